"""MIB's sequence encoders: a 1-D convolution to the model width, then (audio and vision) a
MulT-style Transformer encoder, pooled by a masked mean over the valid steps.

The public code runs its encoders over the padding and reads the last (padded) time step;
here the inputs beyond each length are zeroed before the convolution (so a kernel that
reaches past the end sees exactly the zeros of the convolution's own padding), padded
steps are never attended to, and the pooling averages the valid steps only: the output is
the same whatever the padded length and whatever the padding holds.

Encoder (MulT/fairseq layout): x * sqrt(width) + sinusoidal positions, embedding dropout,
then pre-LayerNorm layers (self-attention with attention dropout, a ReLU feed-forward of
4 x width with its own dropout, residual dropout), and a final LayerNorm.
"""

import math

import flax.linen as nn
import jax.numpy as jnp


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
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, mask_BxT):
    x = x_BxTxD * mask_BxT.astype(x_BxTxD.dtype)[..., None]
    return nn.Conv(self.width, (3,), padding=((1, 1),), use_bias=False, dtype=self.dtype,
                   name="conv")(x)


class EncoderLayer(nn.Module):
  width: int
  heads: int
  attn_dropout: float
  relu_dropout: float
  res_dropout: float
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxW, mask_BxT, deterministic: bool):
    keys_Bx1x1xT = mask_BxT[:, None, None, :].astype(bool)  # Queries may be padding; keys not.
    h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x_BxTxW)
    h = nn.MultiHeadDotProductAttention(
        self.heads, dtype=self.dtype, dropout_rate=self.attn_dropout, name="attn")(
            h, h, mask=keys_Bx1x1xT, deterministic=deterministic)
    x = x_BxTxW + nn.Dropout(self.res_dropout)(h, deterministic=deterministic)
    h = nn.LayerNorm(dtype=self.dtype, name="ln_ffn")(x)
    h = nn.relu(nn.Dense(4 * self.width, dtype=self.dtype, name="fc1")(h))
    h = nn.Dropout(self.relu_dropout)(h, deterministic=deterministic)
    h = nn.Dense(self.width, dtype=self.dtype, name="fc2")(h)
    return x + nn.Dropout(self.res_dropout)(h, deterministic=deterministic)


class TransformerEncoder(nn.Module):
  """Frames [B, T, D] and lengths [B] -> the masked mean of the encoded frames [B, width]."""
  width: int
  heads: int
  layers: int
  attn_dropout: float
  relu_dropout: float
  res_dropout: float
  embed_dropout: float
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, len_B, deterministic: bool):
    t = x_BxTxD.shape[1]
    mask_BxT = (jnp.arange(t)[None, :] < len_B[:, None]).astype(jnp.int32)
    x = Conv1d(width=self.width, dtype=self.dtype, name="proj")(x_BxTxD, mask_BxT)
    x = math.sqrt(self.width) * x + sinusoidal(t, self.width).astype(x.dtype)[None]
    x = nn.Dropout(self.embed_dropout)(x, deterministic=deterministic)
    for i in range(self.layers):
      layer = EncoderLayer(width=self.width, heads=self.heads, attn_dropout=self.attn_dropout,
                           relu_dropout=self.relu_dropout, res_dropout=self.res_dropout,
                           dtype=self.dtype, name=f"layer_{i}")
      x = layer(x, mask_BxT, deterministic)
    x = nn.LayerNorm(dtype=self.dtype, name="ln_final")(x)
    return masked_mean(x, mask_BxT)
