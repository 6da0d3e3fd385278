"""Checks a whole config before any work, so that a bad value stops the run in one line.

Light on purpose (no JAX, no TFDS): run.py calls `validate` right after its flags parse.
Every error names the key, the value found and what is allowed.
"""

import math

from data_pipelines import readers
from data_pipelines import segments
from mird_jax.evaluation import corruptions
from mird_jax.evaluation import metrics

# Keys whose value must be one of a fixed set. The modules that read them take their
# allowed values from here.
CHOICES = {
    "data.name": ("cmu_mosi", "cmu_mosei", "synthetic_mosi"),
    "data.format": readers.FORMATS + (segments.FORMAT,),
    "data.split": ("file", "standard"),
    "data.missing_segments": ("refuse", "drop"),
    "data.metric_dataset": ("mosi", "mosei", "sims"),
    "model.name": ("mird", "mib", "text"),
    "model.fusion": ("wsa", "wa"),
    "model.av_encoder": ("lstm", "transformer"),
    "model.mib.variant": ("early", "late", "complete"),
    "model.mib.fusion": ("concat", "tensor", "sum", "product"),
    "model.mib.kl_reduce": ("mean", "sum"),
    "model.mib.readout": ("mean", "last"),
    "model.mib.init": ("flax", "public"),
    "model.mib.tensor_head": ("ours", "public"),
    "model.constraint": ("mim", "orthogonal", "none"),
    "model.text_recon_target": ("vocab_logits", "bert_embeddings"),
    "model.init_scheme": ("flax", "pytorch"),
    "model.lstm_cell": ("flax", "torch"),
    "model.dtype": ("float32", "bfloat16"),
    "loss.task": ("mse", "l1"),
    "loss.combine": ("log", "weighted"),
    "optim.schedule": ("warmup_decay", "public_ramp", "constant"),
    "optim.adamw": ("optax", "transformers"),
    "train.select_mode": ("min", "max"),
    "sweep.sampler": ("tpe", "random"),
    "sweep.pruner": ("none", "median"),
    "sweep.direction": ("", "minimize", "maximize"),
}
_POSITIVE = ("data.batch_size", "data.eval_batch_size", "data.text_len", "data.audio_len",
             "data.audio_dim", "data.vision_len", "data.vision_dim", "model.d_z",
             "model.lstm_hidden", "model.regressor_hidden", "club.hidden", "train.epochs",
             "train.patience", "train.log_every_steps", "train.keep_checkpoints",
             "diagnostics.knn_k", "model.mib.width", "model.mib.bottleneck",
             "model.mib.hidden", "model.mib.heads", "model.mib.layers", "optim.accumulate_steps",
             "num_seeds", "data.max_abs_feature", "model.mib.layer_norm_eps", "sweep.trials")
_NON_NEGATIVE = ("train.num_devices", "diagnostics.knn_dims", "data.unlabeled_ratio",
                 "club.steps", "club.lr",
                 "loss.w_task", "loss.w_recon_text", "loss.w_recon_audio",
                 "loss.w_recon_vision", "loss.w_mi", "loss.w_orthogonal", "optim.bert_lr",
                 "optim.main_lr", "optim.weight_decay", "optim.grad_clip", "model.mib.beta",
                 "model.mib.fused_task_weight", "sweep.startup_trials",
                 "sweep.pruner_warmup_epochs", "sweep.confirm_seeds")


class ConfigError(ValueError):
  """A config value that cannot work; the message is one line naming key and value."""


def get(config, dotted: str):
  for part in dotted.split("."):
    config = getattr(config, part)
  return config


def unknown_key(error: LookupError | AttributeError) -> tuple[str, str]:
  """(the missing key, ml_collections' "Did you mean ..." hint or "") of the error a
  locked ConfigDict raises for a key it does not have (its message is "'key'\nhint",
  possibly wrapped in further errors)."""
  msg = error
  while isinstance(msg, BaseException) and msg.args:
    msg = msg.args[0]
  key, _, hint = str(msg).partition("\n")
  return key.strip("'\""), hint.strip()


def _one_of(key: str, value, allowed) -> None:
  if value not in allowed:
    raise ConfigError(f"{key}={value!r} is not allowed; expected one of "
                      f"{', '.join(map(repr, allowed))}")


def require_choice(key: str, value) -> None:
  """Raises ConfigError unless `value` is one of CHOICES[key] (for modules that read it)."""
  _one_of(key, value, CHOICES[key])


def _floats(node, prefix=""):
  for key, value in node.items():
    if hasattr(value, "items"):
      yield from _floats(value, f"{prefix}{key}.")
    elif isinstance(value, float):
      yield f"{prefix}{key}", value


def _check_restart(value) -> None:
  if value not in ("auto", "from_scratch") and not (isinstance(value, str) and value.isdigit()):
    raise ConfigError(f"train.restart={value!r} is not allowed; expected 'auto', "
                      "'from_scratch' or a step number of a checkpoint in ckpt/")


def validate(config) -> None:
  """Raises ConfigError on the first value that cannot work."""
  for key, value in _floats(config):
    if not math.isfinite(value):  # inf or nan passes the range checks below.
      raise ConfigError(f"{key}={value!r} must be a finite number")
  _check_restart(config.train.restart)
  for key in CHOICES:
    require_choice(key, get(config, key))
  for key in _POSITIVE:
    if not get(config, key) > 0:
      raise ConfigError(f"{key}={get(config, key)!r} must be > 0")
  for key in _NON_NEGATIVE:
    if not get(config, key) >= 0:
      raise ConfigError(f"{key}={get(config, key)!r} must be >= 0")
  for condition in config.robustness.conditions:
    try:
      corruptions.parse(condition)
    except ValueError as e:
      raise ConfigError(f"robustness.conditions: {e}") from None
  if not 0 < config.data.label_fraction <= 1:
    raise ConfigError(f"data.label_fraction={config.data.label_fraction!r} must be in (0, 1]")
  if not 0 <= config.optim.warmup_frac <= 1:
    raise ConfigError(f"optim.warmup_frac={config.optim.warmup_frac!r} must be in [0, 1]")
  _one_of("train.select_metric", config.train.select_metric,
          metrics.names(config.data.metric_dataset))
  if config.sweep.metric:
    _one_of("sweep.metric", config.sweep.metric, metrics.names(config.data.metric_dataset))
  if config.model.share_bert and not config.bert.pretrained_agnostic:
    raise ConfigError("bert.pretrained_agnostic=False keeps the agnostic BERT random while "
                      "model.share_bert=True makes it the language BERT: set one of them back")
  if config.loss.scale_free and config.model.name != "mird":
    raise ConfigError("loss.scale_free=True standardises the latents of MIRD's MI and "
                      f"orthogonality penalties; model.name={config.model.name!r} has neither: "
                      "set it False")
  if config.loss.scale_free and config.optim.accumulate_steps > 1:
    raise ConfigError(f"loss.scale_free=True standardises over the whole batch, which "
                      f"optim.accumulate_steps={config.optim.accumulate_steps} cannot split "
                      "into microbatches exactly: set one of them back")
  _check_buckets(config)
  d = config.data
  sdk_keys = {"data.audio_csd": d.audio_csd, "data.vision_csd": d.vision_csd,
              "data.label_csd": d.label_csd, "data.split": d.split != "file"}
  if d.format != segments.FORMAT and any(sdk_keys.values()):
    raise ConfigError(f"{[k for k, v in sdk_keys.items() if v][0]} is read with "
                      f"data.format={segments.FORMAT!r} (a label.csv) only, but "
                      f"data.format={d.format!r}")
  if config.model.name != "mird" and d.unlabeled_ratio > 0:
    raise ConfigError(f"data.unlabeled_ratio={d.unlabeled_ratio} but model.name="
                      f"{config.model.name!r} trains on "
                      "labelled examples only: set --config.data.unlabeled_ratio=0")
  if d.unlabeled_ratio > 0 and not d.unlabeled_file:
    raise ConfigError(
        f"data.unlabeled_ratio={d.unlabeled_ratio} asks for unlabelled examples but no pool "
        "is configured: name one with --config.data.unlabeled_file=FILE (in "
        "data.manual_dir), or train without with --config.data.unlabeled_ratio=0")


_BUCKET_KEYS = ("data.text_buckets", "data.audio_buckets", "data.vision_buckets")


def _check_buckets(config) -> None:
  """Bucket lists are ascending positive integers; grouping needs one; the last-step
  readout reads a padded step, which cutting would move."""
  for key in _BUCKET_KEYS:
    value = get(config, key)
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in value) or list(
            value) != sorted(set(value)):
      raise ConfigError(f"{key}={value!r} must be a tuple of ascending positive integers "
                        "(lengths to cut batches to), or () for none")
  some = [key for key in _BUCKET_KEYS if get(config, key)]
  if config.data.group_by_length and not some:
    raise ConfigError("data.group_by_length=True groups batches by length bucket, but "
                      f"{', '.join(_BUCKET_KEYS)} are all empty: give one of them buckets, or "
                      "set it False")
  if config.data.group_chunk < 0:
    raise ConfigError(f"data.group_chunk={config.data.group_chunk!r} must be >= 0 (0: the "
                      "whole epoch)")
  reads_out = config.model.name == "mib" or config.model.av_encoder == "transformer"
  if some and reads_out and config.model.mib.readout == "last":
    raise ConfigError(f"model.mib.readout='last' reads the last padded step, which cutting "
                      f"batches to buckets moves; set {some[0]}=() (and the other bucket "
                      "keys) or model.mib.readout='mean'")
