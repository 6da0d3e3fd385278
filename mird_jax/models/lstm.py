"""Masked LSTM encoders for audio/vision and the LSTM decoders that reconstruct each modality."""

import flax.linen as nn
import jax.numpy as jnp

from mird_jax.models import initializers


class LSTMEncoder(nn.Module):
  """Last valid hidden state of an LSTM over [B, T, D] frames -> Dense -> z [B, d_z].

  `nn.RNN(..., seq_lengths=...)` stops each example's carry at its length, so padded frames
  never enter the state (the public code runs its LSTMs over the padding).
  """
  hidden: int
  d_z: int
  init_scheme: str
  cell: str = "flax"  # flax | torch (initializers.lstm_cell).
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, len_B, deterministic: bool = True):
    del deterministic  # No dropout inside (the signature of every av_encoder).
    cell = initializers.lstm_cell(self.hidden, self.init_scheme, self.dtype,
                                  layout=self.cell)
    (_, h_BxH), _ = nn.RNN(cell, return_carry=True, name="rnn")(x_BxTxD, seq_lengths=len_B)
    return initializers.dense(self.d_z, self.hidden, self.init_scheme, self.dtype, "proj")(h_BxH)


class _FeedbackStep(nn.Module):
  """One decoder step: the LSTM's input is its own previous hidden state."""
  hidden: int
  init_scheme: str
  cell: str
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, carry, _):
    lstm_carry, x_BxH = carry
    lstm_carry, h_BxH = initializers.lstm_cell(self.hidden, self.init_scheme, self.dtype,
                                               "cell", self.cell)(lstm_carry, x_BxH)
    return (lstm_carry, h_BxH), h_BxH


class LSTMDecoder(nn.Module):
  """Unrolls an LSTM for `length` steps from a latent and maps every hidden state to `out`.

  As in the public code, the LSTM is as wide as the latent [z_s; z_m]: its first input is
  the latent itself and each later input is its previous hidden state. Step t depends on
  steps before it only, so the first t steps are the same whatever `length`: a batch cut
  to a length bucket (data_pipelines/lengths.py) is rebuilt to its own length.
  """
  out: int
  init_scheme: str
  cell: str = "flax"  # flax | torch (initializers.lstm_cell).
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latent_BxZ, length: int):
    width = latent_BxZ.shape[-1]
    zeros = jnp.zeros_like(latent_BxZ)
    scan = nn.scan(_FeedbackStep, variable_broadcast="params", split_rngs={"params": False},
                   length=length, out_axes=1)
    _, h_BxTxZ = scan(hidden=width, init_scheme=self.init_scheme, cell=self.cell, dtype=self.dtype,
                      name="lstm")(((zeros, zeros), latent_BxZ), None)
    # Applied to [B*T, Z] rows: XLA's CPU backward of a Dense over a 3-D input moves the
    # [B, T, out] gradient through transposes, which for the vocabulary-wide text decoder
    # cost more than its matmuls (the same values, bit for bit).
    b, t = h_BxTxZ.shape[:2]
    out = initializers.dense(self.out, width, self.init_scheme, self.dtype, "output")(
        h_BxTxZ.reshape(b * t, width))
    return out.reshape(b, t, self.out)
