"""The model families (`model.name`): MIRD (model.py) and MIB (mib.py), built from a config.

Both take the canonical batch, return (prediction [B], aux) from `__call__(batch,
deterministic, reconstruct)`, name the latents the diagnostics read in `LATENTS`, and touch
every parameter in `init_everything`. Everything else (the trainer, checkpoints, eval,
multi-seed) is shared.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections

from mird_jax import bert
from mird_jax import bert_loading
from mird_jax import config_check
from mird_jax import mib
from mird_jax import model as mird

NAMES = ("mird", "mib")
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


def build(config: ml_collections.ConfigDict):
  """The configured model (a flax module; its `spec` is hashable, so jitted steps key on it)."""
  config_check.require_choice("model.name", config.model.name)
  if config.model.name == "mib":
    return mib.MIB(mib.MibSpec.from_config(config, bert_config(config)))
  return mird.MIRD(mird.ModelSpec.from_config(config, bert_config(config)))


def dummy_batch(spec, batch_size: int = 2) -> dict[str, jax.Array]:
  t = spec.text_len
  return {"text_ids": jnp.zeros((batch_size, t), jnp.int32),
          "text_mask": jnp.ones((batch_size, t), jnp.int32),
          "text_type": jnp.zeros((batch_size, t), jnp.int32),
          "audio": jnp.zeros((batch_size, spec.audio_len, spec.audio_dim)),
          "audio_len": jnp.full((batch_size,), spec.audio_len, jnp.int32),
          "vision": jnp.zeros((batch_size, spec.vision_len, spec.vision_dim)),
          "vision_len": jnp.full((batch_size,), spec.vision_len, jnp.int32)}


@functools.lru_cache(maxsize=16)
def _jitted_init(cls, spec):
  """One compiled init per model: every run, eval and test building the same model shares it."""
  return jax.jit(functools.partial(cls(spec).init, method=cls.init_everything))


def init_params(model, rng, bert_config_: ml_collections.ConfigDict | None = None):
  """Random params for every module; with `bert_config_.pretrained`, every BERT is then
  filled from the checkpoint at `bert_config_.path`."""
  params = _jitted_init(type(model), model.spec)(rng, dummy_batch(model.spec))["params"]
  if bert_config_ is not None and bert_config_.pretrained:
    params = flax.core.unfreeze(params)
    for name in _BERTS:
      if name in params:
        params[name] = bert_loading.load(params[name], bert_config_.path)
  return params
