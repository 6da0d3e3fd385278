"""The only bridge from a config to a model: the families (`model.name`), MIRD (mird.py),
MIB (mib.py) and the text-only regressor (text_regressor.py), built from the config's keys.

Every family is a Flax module whose class states the family protocol, which is all that
shared code (the trainer, diagnostics, checkpoints, eval, multi-seed, tools) may use:
- `__call__(batch, deterministic, reconstruct)` -> (prediction [B], aux);
- for a family whose spec has `estimators` (the CLUB networks), `club_stats(aux)` and
  `latents(batch, deterministic)` -> ({name: [B, d]}, extras), called by name
  (`method="club_stats"`);
- `init_everything(batch)`, touching every parameter for `init`;
- `LATENTS`, the latents the diagnostics read; `loss_terms(spec)`, the loss terms the
  family's objective has;
- on its spec: `dims` (data_pipelines.example.Dims), `bert`, `estimators` (it has the CLUB
  networks), `constraint` (mim | orthogonal | none) and `sample_at_eval`.
A new family touches its own module and this file only.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections

from data_pipelines import example
from mird_jax import config_check
from mird_jax.models import av_encoder
from mird_jax.models import bert
from mird_jax.models import bert_loading
from mird_jax.models import mib
from mird_jax.models import mird
from mird_jax.models import public_weights
from mird_jax.models import text_regressor

_BERTS = ("bert_l", "bert_s", "bert")  # Every BERT module name of either family.


def bert_config(config: ml_collections.ConfigDict) -> bert.BertConfig:
  """The BERT architecture: a checkpoint's config.json, or `bert.random` when not pretrained."""
  b = config.bert
  if b.pretrained:
    return bert_loading.config_of(b.path, b.hidden_dropout, b.attention_dropout)
  r = b.random
  return bert.BertConfig(
      vocab_size=r.vocab_size, hidden_size=r.hidden_size, num_layers=r.num_layers,
      num_heads=r.num_heads, intermediate_size=r.intermediate_size,
      max_position=r.max_position, type_vocab_size=r.type_vocab_size,
      hidden_dropout=b.hidden_dropout, attention_dropout=b.attention_dropout)


def av_encoder_spec(config: ml_collections.ConfigDict) -> av_encoder.EncoderSpec:
  """The audio/vision encoders of either family (`model.av_encoder`; av_encoder.py)."""
  m, b = config.model, config.model.mib
  config_check.require_choice("model.av_encoder", m.av_encoder)
  return av_encoder.EncoderSpec(
      kind=m.av_encoder, lstm_hidden=m.lstm_hidden, lstm_init=m.init_scheme,
      lstm_cell=m.lstm_cell, width=b.width, heads=b.heads, layers=b.layers,
      attn_dropout=b.attn_dropout, relu_dropout=b.relu_dropout, res_dropout=b.res_dropout,
      embed_dropout=b.embed_dropout, readout=b.readout, init=b.init,
      layer_norm_eps=b.layer_norm_eps)


def mird_spec(config: ml_collections.ConfigDict, bert_cfg: bert.BertConfig) -> mird.ModelSpec:
  m, w = config.model, config.loss
  for key in ("model.constraint", "model.text_recon_target", "model.init_scheme",
              "model.fusion", "model.lstm_cell"):
    config_check.require_choice(key, config_check.get(config, key))
  return mird.ModelSpec(
      bert=bert_cfg, dims=example.Dims.from_config(config.data), d_z=m.d_z,
      lstm_hidden=m.lstm_hidden, av_encoder=av_encoder_spec(config),
      regressor_hidden=m.regressor_hidden, fusion=m.fusion,
      beta_shift=m.beta_shift, constraint=m.constraint, share_bert=m.share_bert,
      text_recon_target=m.text_recon_target, latent_dropout=m.latent_dropout,
      fusion_dropout=m.fusion_dropout, regressor_dropout=m.regressor_dropout,
      club_hidden=config.club.hidden,
      estimators=m.constraint == "mim" or config.club.monitor,
      recon=(w.w_recon_text > 0, w.w_recon_audio > 0, w.w_recon_vision > 0),
      init_scheme=m.init_scheme, lstm_cell=m.lstm_cell, dtype=m.dtype)


def mib_spec(config: ml_collections.ConfigDict, bert_cfg: bert.BertConfig) -> mib.MibSpec:
  b = config.model.mib
  for key in ("model.mib.variant", "model.mib.fusion", "model.mib.readout", "model.mib.init",
              "model.mib.tensor_head"):
    config_check.require_choice(key, config_check.get(config, key))
  return mib.MibSpec(
      bert=bert_cfg, dims=example.Dims.from_config(config.data), variant=b.variant,
      fusion=b.fusion, width=b.width, bottleneck=b.bottleneck, hidden=b.hidden,
      scale_shift=b.scale_shift, heads=b.heads, layers=b.layers,
      attn_dropout=b.attn_dropout, relu_dropout=b.relu_dropout, res_dropout=b.res_dropout,
      embed_dropout=b.embed_dropout, av_encoder=av_encoder_spec(config),
      sample_at_eval=b.sample_at_eval, readout=b.readout,
      init=b.init, layer_norm_eps=b.layer_norm_eps, tensor_head=b.tensor_head,
      tensor_dropout=b.tensor_dropout,
      dtype=config.model.dtype)


def text_spec(config: ml_collections.ConfigDict,
              bert_cfg: bert.BertConfig) -> text_regressor.TextSpec:
  return text_regressor.TextSpec(bert=bert_cfg, dims=example.Dims.from_config(config.data),
                                 dropout=config.bert.hidden_dropout, dtype=config.model.dtype)


def build(config: ml_collections.ConfigDict):
  """The configured model (a flax module; its `spec` is hashable, so jitted steps key on it)."""
  config_check.require_choice("model.name", config.model.name)
  if config.model.name == "mib":
    return mib.MIB(mib_spec(config, bert_config(config)))
  if config.model.name == "text":
    return text_regressor.TextRegressor(text_spec(config, bert_config(config)))
  return mird.MIRD(mird_spec(config, bert_config(config)))


def loss_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{family of loss terms: its weight} (`loss.w_<family>`; MIB's KL weight is its beta, and
  `fused_task` multiplies its fused prediction's task term: objective.total)."""
  weights = {k: getattr(config.loss, f"w_{k}") for k in (
      "task", "recon_text", "recon_audio", "recon_vision", "mi", "orthogonal")}
  if config.model.name == "mib":
    weights["kl"] = config.model.mib.beta
    weights["fused_task"] = config.model.mib.fused_task_weight
  return weights


def label(config: ml_collections.ConfigDict) -> str:
  """The model in a few words, for the tools' reports."""
  if config.model.name == "mib":
    return f"mib {config.model.mib.variant}"
  if config.model.name == "text":
    return "text only (the BERT branch alone)"
  return (f"mird, text reconstruction target {config.model.text_recon_target}, club.steps "
          f"{config.club.steps}, refresh_latents {config.club.refresh_latents}")


def dummy_batch(spec, batch_size: int = 2) -> dict[str, jax.Array]:
  """A batch of `batch_size` zero examples of the spec's shapes, every sequence full."""
  dims = spec.dims
  lengths = {"audio_len": dims.audio_len, "vision_len": dims.vision_len}
  batch = {}
  for key in example.MODEL_KEYS:
    shape, dtype = dims.shapes()[key]
    batch[key] = (jnp.full((batch_size,), lengths[key], dtype) if key in lengths else
                  jnp.zeros((batch_size, *shape), dtype))
  batch["text_mask"] = jnp.ones_like(batch["text_mask"])
  return batch


@functools.lru_cache(maxsize=16)
def _jitted_init(cls, spec):
  """One compiled init per model: every run, eval and test building the same model shares it."""
  return jax.jit(functools.partial(cls(spec).init, method=cls.init_everything))


def init_params(model, rng, bert_settings: ml_collections.ConfigDict | None = None):
  """Random params for every module; with `bert_settings.pretrained`, every BERT is then
  filled from the checkpoint at `bert_settings.path` (but MIRD's modality-agnostic
  `bert_s` without `bert_settings.pretrained_agnostic`: the public code's random start)."""
  params = _jitted_init(type(model), model.spec)(rng, dummy_batch(model.spec))["params"]
  if bert_settings is not None and bert_settings.pretrained:
    params = flax.core.unfreeze(params)
    for name in _BERTS:
      if name == "bert_s" and not bert_settings.pretrained_agnostic:
        continue
      if name in params:
        params[name] = bert_loading.load(params[name], bert_settings.path)
  return params


def public_params(config: ml_collections.ConfigDict, model, state: dict, label: str):
  """`model`'s params from a state_dict of the authors' code (public_weights.py): MIRD's
  WSABERTReconMIM, or the MIB variant file of `model.mib.variant`."""
  shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
  if config.model.name == "mib":
    return public_weights.mib(shapes, state, config.model.mib.variant, config.model.mib.heads,
                              label)
  return public_weights.mird(shapes, state, config.model.fusion, label)
