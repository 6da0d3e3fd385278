"""MIB's Transformer encoder over frames: padded frames change nothing, real ones do."""

import jax
import jax.numpy as jnp
import numpy as np

from mird_jax.models import transformer


def test_masked_mean_averages_the_valid_steps_only():
  x = jnp.arange(12.0).reshape(2, 3, 2)
  mask = jnp.array([[1, 1, 0], [1, 0, 0]])
  np.testing.assert_allclose(transformer.masked_mean(x, mask), [[1.0, 2.0], [6.0, 7.0]])


def test_encoder_ignores_padded_frames_and_reads_real_ones():
  enc = transformer.TransformerEncoder(width=8, heads=2, layers=1, attn_dropout=0.0,
                                       relu_dropout=0.0, res_dropout=0.0, embed_dropout=0.0)
  x = jax.random.normal(jax.random.key(0), (2, 6, 3))
  lengths = jnp.array([4, 6])
  params = jax.jit(enc.init, static_argnums=3)(jax.random.key(1), x, lengths, True)
  apply = jax.jit(lambda frames: enc.apply(params, frames, lengths, True))
  out = apply(x)
  assert out.shape == (2, 8)
  padded = x.at[0, 4:].set(100.0)  # Beyond example 0's length only.
  np.testing.assert_allclose(apply(padded), out, atol=1e-5)
  real = x.at[0, 1].set(100.0)
  assert not np.allclose(apply(real)[0], out[0], atol=1e-3)
