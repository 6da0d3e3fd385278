"""MIB's sequence encoders: a 1-D convolution to the model width, then (audio and vision) a
MulT-style Transformer encoder, pooled by a masked mean over the valid steps.

The public code runs its encoders over the padding and reads the last (padded) time step;
here the inputs beyond each length are zeroed before the convolution (so a kernel that
reaches past the end sees exactly the zeros of the convolution's own padding), padded
steps are never attended to, and the pooling (`readout=mean`) averages the valid steps
only: the output is the same whatever the padded length and whatever the padding holds.
`readout=last` reads the last time step instead, as the public code does (for a padded
example a padding step, which here attends to the valid steps only).

Attention dropout draws one mask element per (example, head, query, key), as torch's
F.dropout on the attention weights does (Flax's default broadcasts one mask over the
batch and the heads). `initializer=public` (`model.mib.init`) gives the public MIB code's
initialisers: its `init_weights()` resets every Linear (fc1, fc2, the attention output)
to N(0, 0.02) with zero biases, the attention's input projection keeps fairseq's
xavier-uniform over the stacked [3W, W] matrix, and the convolutions keep torch's default
U(+-1/sqrt(D x 3)).

Encoder (MulT/fairseq layout): x * sqrt(width) + sinusoidal positions, embedding dropout,
then pre-LayerNorm layers (self-attention with attention dropout, a ReLU feed-forward of
4 x width with its own dropout, residual dropout), and a final LayerNorm.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from mird_jax.models import initializers

READOUTS = ("mean", "last")
_NORMAL = nn.initializers.normal(0.02)


def dense(features: int, init: str, dtype, name=None, **kw) -> nn.Dense:
  """A Dense layer: Flax's default initialiser, or the public MIB code's N(0, 0.02)."""
  if init == "public":
    kw.update(kernel_init=_NORMAL, bias_init=nn.initializers.zeros_init())
  return nn.Dense(features, dtype=dtype, name=name, **kw)


def pool(x_BxTxD, mask_BxT, readout: str):
  """[B, D] from a sequence: the masked mean (`mean`) or the last time step (`last`)."""
  if readout == "last":
    return x_BxTxD[:, -1]
  if readout != "mean":
    raise ValueError(f"model.mib.readout={readout!r}; expected one of {READOUTS}")
  return masked_mean(x_BxTxD, mask_BxT)


def masked_mean(x_BxTxD, mask_BxT):
  """Mean over the valid steps (mask 1) of each example."""
  m = mask_BxT.astype(x_BxTxD.dtype)[..., None]
  return jnp.sum(x_BxTxD * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


def sinusoidal(t: int, width: int):
  """fairseq's sinusoidal table [t, width] for positions 1..t (0 is its padding index)."""
  half = width // 2
  freq = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000.0) / max(half - 1, 1)))
  angle_TxH = jnp.arange(1, t + 1, dtype=jnp.float32)[:, None] * freq[None, :]
  table = jnp.concatenate([jnp.sin(angle_TxH), jnp.cos(angle_TxH)], axis=1)
  return jnp.pad(table, ((0, 0), (0, width - 2 * half)))


class Conv1d(nn.Module):
  """Conv1d(k=3, padding 1, no bias) over the valid steps only: [B, T, D] -> [B, T, width]."""
  width: int
  initializer: str = "flax"  # flax | public (the module docstring).
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, mask_BxT):
    x = x_BxTxD * mask_BxT.astype(x_BxTxD.dtype)[..., None]
    kw = {}
    if self.initializer == "public":  # torch's Conv1d default: U(+-1/sqrt(fan_in)), fan_in = D x 3.
      kw["kernel_init"] = initializers.uniform(1.0 / math.sqrt(3 * x_BxTxD.shape[-1]))
    return nn.Conv(self.width, (3,), padding=((1, 1),), use_bias=False, dtype=self.dtype,
                   name="conv", **kw)(x)


class EncoderLayer(nn.Module):
  width: int
  heads: int
  attn_dropout: float
  relu_dropout: float
  res_dropout: float
  initializer: str = "flax"  # flax | public (the module docstring).
  layer_norm_eps: float = 1e-6
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxW, mask_BxT, deterministic: bool):
    keys_Bx1x1xT = mask_BxT[:, None, None, :].astype(bool)  # Queries may be padding; keys not.
    norm = lambda name: nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name=name)
    h = norm("ln_attn")(x_BxTxW)
    kw = {}
    if self.initializer == "public":
      # xavier-uniform over fairseq's stacked [3W, W] input projection; the output
      # projection is a Linear, reset to N(0, 0.02) like the others.
      kw = dict(kernel_init=initializers.uniform(math.sqrt(6.0 / (4 * self.width))),
                out_kernel_init=_NORMAL)
    h = nn.MultiHeadDotProductAttention(
        self.heads, dtype=self.dtype, dropout_rate=self.attn_dropout,
        broadcast_dropout=False, name="attn", **kw)(
            h, h, mask=keys_Bx1x1xT, deterministic=deterministic)
    x = x_BxTxW + nn.Dropout(self.res_dropout)(h, deterministic=deterministic)
    h = norm("ln_ffn")(x)
    h = nn.relu(dense(4 * self.width, self.initializer, self.dtype, "fc1")(h))
    h = nn.Dropout(self.relu_dropout)(h, deterministic=deterministic)
    h = dense(self.width, self.initializer, self.dtype, "fc2")(h)
    return x + nn.Dropout(self.res_dropout)(h, deterministic=deterministic)


class TransformerEncoder(nn.Module):
  """Frames [B, T, D] and lengths [B] -> the encoded frames pooled (`readout`) [B, width]."""
  width: int
  heads: int
  layers: int
  attn_dropout: float
  relu_dropout: float
  res_dropout: float
  embed_dropout: float
  readout: str = "mean"
  initializer: str = "flax"  # flax | public (the module docstring).
  layer_norm_eps: float = 1e-6  # Flax's; torch's (the public code's) is 1e-5.
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, len_B, deterministic: bool):
    t = x_BxTxD.shape[1]
    mask_BxT = (jnp.arange(t)[None, :] < len_B[:, None]).astype(jnp.int32)
    x = Conv1d(width=self.width, initializer=self.initializer, dtype=self.dtype,
               name="proj")(x_BxTxD, mask_BxT)
    x = math.sqrt(self.width) * x + sinusoidal(t, self.width).astype(x.dtype)[None]
    x = nn.Dropout(self.embed_dropout)(x, deterministic=deterministic)
    for i in range(self.layers):
      layer = EncoderLayer(width=self.width, heads=self.heads, attn_dropout=self.attn_dropout,
                           relu_dropout=self.relu_dropout, res_dropout=self.res_dropout,
                           initializer=self.initializer, layer_norm_eps=self.layer_norm_eps,
                           dtype=self.dtype, name=f"layer_{i}")
      x = layer(x, mask_BxT, deterministic)
    x = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="ln_final")(x)
    return pool(x, mask_BxT, self.readout)
