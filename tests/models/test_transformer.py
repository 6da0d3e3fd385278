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


def test_attention_dropout_draws_a_mask_per_example_and_head():
  """Two identical examples, two identical heads, each head written to its own output dims
  and the feed-forward silenced: the attention outputs differ across examples and across
  heads only if each (example, head) gets its own dropout mask, as torch's F.dropout on
  the public attention weights does (a broadcast mask, Flax's default, makes them equal)."""
  width, heads, t = 4, 2, 6
  layer = transformer.EncoderLayer(width=width, heads=heads, attn_dropout=0.5,
                                   relu_dropout=0.0, res_dropout=0.0)
  x = jnp.broadcast_to(jax.random.normal(jax.random.key(0), (1, t, width)), (2, t, width))
  mask = jnp.ones((2, t), jnp.int32)
  params = layer.init(jax.random.key(1), x, mask, True)["params"]
  attn = dict(params["attn"])
  for name in ("query", "key", "value"):
    k = attn[name]["kernel"]
    attn[name] = {"kernel": jnp.stack([k[:, 0]] * heads, axis=1),
                  "bias": jnp.zeros_like(attn[name]["bias"])}
  attn["out"] = {"kernel": jnp.eye(width).reshape(heads, width // heads, width),
                 "bias": jnp.zeros(width)}
  params = {**params, "attn": attn,
            "fc2": jax.tree.map(jnp.zeros_like, params["fc2"])}
  det = layer.apply({"params": params}, x, mask, True) - x
  np.testing.assert_allclose(det[..., :2], det[..., 2:], atol=1e-6)  # Heads alike...
  np.testing.assert_allclose(det[0], det[1], atol=1e-6)  # ...and examples, without dropout.
  out = layer.apply({"params": params}, x, mask, False,
                    rngs={"dropout": jax.random.key(2)}) - x
  assert np.abs(out[0] - out[1]).max() > 1e-2  # Per example.
  assert np.abs(out[..., :2] - out[..., 2:]).max() > 1e-2  # Per head.
