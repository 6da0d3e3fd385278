"""Masked LSTM encoders for audio/vision and the LSTM decoders that reconstruct each modality."""

import flax.linen as nn
import jax.numpy as jnp


class LSTMEncoder(nn.Module):
  """Last valid hidden state of an LSTM over [B, T, D] frames -> Dense -> z [B, d_z].

  `nn.RNN(..., seq_lengths=...)` stops each example's carry at its length, so padded frames
  never enter the state (the public code runs its LSTMs over the padding).
  """
  hidden: int
  d_z: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, len_B):
    cell = nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype)
    (_, h_BxH), _ = nn.RNN(cell, return_carry=True, name="rnn")(x_BxTxD, seq_lengths=len_B)
    return nn.Dense(self.d_z, dtype=self.dtype, name="proj")(h_BxH)


class _FeedbackStep(nn.Module):
  """One decoder step: the LSTM's input is its own previous hidden state."""
  hidden: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, carry, _):
    lstm_carry, x_BxH = carry
    lstm_carry, h_BxH = nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype, name="cell")(
        lstm_carry, x_BxH)
    return (lstm_carry, h_BxH), h_BxH


class LSTMDecoder(nn.Module):
  """Unrolls an LSTM for `length` steps from a latent and maps every hidden state to `out`.

  As in the public code, the first input is the latent (projected to the LSTM width) and
  each later input is the previous hidden state.
  """
  hidden: int
  out: int
  length: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, latent_BxZ):
    x0_BxH = nn.Dense(self.hidden, dtype=self.dtype, name="input")(latent_BxZ)
    zeros = jnp.zeros_like(x0_BxH)
    scan = nn.scan(_FeedbackStep, variable_broadcast="params", split_rngs={"params": False},
                   length=self.length, out_axes=1)
    _, h_BxTxH = scan(self.hidden, self.dtype, name="lstm")(((zeros, zeros), x0_BxH), None)
    return nn.Dense(self.out, dtype=self.dtype, name="output")(h_BxTxH)
