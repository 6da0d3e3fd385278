"""A small linen BERT (embeddings, post-LN encoder, pooler) matching Hugging Face's BertModel.

transformers 5 has no Flax models, so we own this one. Parameter names follow the Hugging
Face checkpoint layout (bert_loading.py maps them one to one). `embed`, `encode` and `pool`
are separate methods because WSA-BERT fuses audio and vision between the embedding layer and
the first encoder layer.
"""

import dataclasses
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp

_INIT = nn.initializers.normal(0.02)  # BERT's initializer_range.


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_position: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1

  @classmethod
  def from_hf_json(cls, path, hidden_dropout: float, attention_dropout: float) -> "BertConfig":
    """From a Hugging Face config.json (BERT-architecture checkpoints only)."""
    cfg = json.loads(pathlib.Path(path).read_text())
    if cfg.get("model_type", "bert") != "bert" or cfg.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"{path}: expected a BERT config with hidden_act 'gelu', found "
                       f"model_type {cfg.get('model_type')!r}, hidden_act "
                       f"{cfg.get('hidden_act')!r}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError(f"{path}: only absolute position embeddings are supported")
    return cls(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"],
               cfg["num_attention_heads"], cfg["intermediate_size"],
               cfg["max_position_embeddings"], cfg.get("type_vocab_size", 2),
               cfg.get("layer_norm_eps", 1e-12), hidden_dropout, attention_dropout)


def _dense(features, dtype, name):
  return nn.Dense(features, kernel_init=_INIT, dtype=dtype, name=name)


def _layer_norm(cfg, dtype, name):
  return nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=dtype, name=name)


class SelfAttention(nn.Module):
  cfg: BertConfig
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxH, mask_BxT, deterministic: bool):
    cfg = self.cfg
    heads, dh = cfg.num_heads, cfg.hidden_size // cfg.num_heads
    split = lambda t: t.reshape(t.shape[:2] + (heads, dh))
    q, k, v = (split(_dense(cfg.hidden_size, self.dtype, n)(x_BxTxH))
               for n in ("query", "key", "value"))
    logits_BxNxTxT = jnp.einsum("bqnd,bknd->bnqk", q, k) / jnp.sqrt(dh).astype(self.dtype)
    # Padded keys get the most negative finite logit, as Hugging Face does.
    big_neg = jnp.finfo(logits_BxNxTxT.dtype).min
    logits_BxNxTxT = jnp.where(mask_BxT[:, None, None, :] > 0, logits_BxNxTxT, big_neg)
    probs = jax.nn.softmax(logits_BxNxTxT.astype(jnp.float32), axis=-1).astype(self.dtype)
    probs = nn.Dropout(cfg.attention_dropout)(probs, deterministic=deterministic)
    ctx = jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(x_BxTxH.shape)
    return ctx


class Layer(nn.Module):
  cfg: BertConfig
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxH, mask_BxT, deterministic: bool):
    cfg = self.cfg
    drop = lambda t: nn.Dropout(cfg.hidden_dropout)(t, deterministic=deterministic)
    ctx = SelfAttention(cfg=cfg, dtype=self.dtype, name="attention_self")(x_BxTxH, mask_BxT,
                                                                          deterministic)
    attn = drop(_dense(cfg.hidden_size, self.dtype, "attention_output")(ctx))
    x = _layer_norm(cfg, self.dtype, "attention_LayerNorm")(x_BxTxH + attn)
    inter = gelu(_dense(cfg.intermediate_size, self.dtype, "intermediate")(x))
    out = drop(_dense(cfg.hidden_size, self.dtype, "output")(inter))
    return _layer_norm(cfg, self.dtype, "output_LayerNorm")(x + out)


def gelu(x):
  """Hugging Face's "gelu", the exact form x * Phi(x), written with erf: jax.nn.gelu's
  erfc form is the same function (within 1e-6) but took twice as long on a CPU."""
  return 0.5 * x * (1.0 + jax.lax.erf(x * 2 ** -0.5))


class Bert(nn.Module):
  cfg: BertConfig
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    cfg = self.cfg
    self.word_embeddings = nn.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=_INIT)
    self.position_embeddings = nn.Embed(cfg.max_position, cfg.hidden_size, embedding_init=_INIT)
    self.token_type_embeddings = nn.Embed(cfg.type_vocab_size, cfg.hidden_size,
                                          embedding_init=_INIT)
    self.embeddings_LayerNorm = _layer_norm(cfg, self.dtype, None)
    self.embeddings_dropout = nn.Dropout(cfg.hidden_dropout)
    self.layers = [Layer(cfg=cfg, dtype=self.dtype) for _ in range(cfg.num_layers)]
    self.pooler = _dense(cfg.hidden_size, self.dtype, None)

  def embed(self, ids_BxT, type_BxT, deterministic: bool):
    """Word + position + type embeddings, LayerNorm, dropout: the input of layer 1."""
    t = ids_BxT.shape[1]
    if t > self.cfg.max_position:
      raise ValueError(f"text length {t} exceeds BERT's max_position {self.cfg.max_position}")
    x = (self.word_embeddings(ids_BxT) + self.position_embeddings(jnp.arange(t))[None]
         + self.token_type_embeddings(type_BxT)).astype(self.dtype)
    return self.embeddings_dropout(self.embeddings_LayerNorm(x), deterministic=deterministic)

  def encode(self, x_BxTxH, mask_BxT, deterministic: bool):
    for layer in self.layers:
      x_BxTxH = layer(x_BxTxH, mask_BxT, deterministic)
    return x_BxTxH

  def pool(self, h_BxTxH):
    return jnp.tanh(self.pooler(h_BxTxH[:, 0]))

  def word_embedding_table(self):
    return self.word_embeddings.embedding

  def __call__(self, ids_BxT, mask_BxT, type_BxT, deterministic: bool = True):
    """Returns (last hidden states [B, T, H], pooled output [B, H])."""
    h = self.encode(self.embed(ids_BxT, type_BxT, deterministic), mask_BxT, deterministic)
    return h, self.pool(h)
