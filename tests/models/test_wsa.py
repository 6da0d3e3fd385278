"""Sparsemax and word-aligned fusion: valid sparse distributions, padded frames never count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mird_jax.models import wsa

# Compiled once per shape: eager op-by-op dispatch compiles every primitive on its own.
sparsemax = jax.jit(wsa.sparsemax, static_argnames="axis")


def test_sparsemax_closed_form_on_hand_made_inputs():
  # Two entries: p_1 = clip((z_1 - z_2 + 1) / 2, 0, 1).
  np.testing.assert_allclose(sparsemax(jnp.array([0.3, 0.1])), [0.6, 0.4], atol=1e-6)
  np.testing.assert_allclose(sparsemax(jnp.array([2.0, 0.5])), [1.0, 0.0], atol=1e-6)
  # [1, 0.5, 0.2]: support {1, 2}, tau = (1.5 - 1) / 2 = 0.25.
  np.testing.assert_allclose(sparsemax(jnp.array([1.0, 0.5, 0.2])), [0.75, 0.25, 0.0],
                             atol=1e-6)
  # Close values: everything in the support, tau = (sum - 1) / n.
  z = jnp.array([0.1, 0.2, 0.3, 0.4])
  np.testing.assert_allclose(sparsemax(z), z - (z.sum() - 1) / 4, atol=1e-6)


def test_sparsemax_is_a_sparse_distribution_along_any_axis():
  z = jax.random.normal(jax.random.key(0), (5, 7, 9)) * 3
  for axis in (-1, 1):
    p = sparsemax(z, axis=axis)
    assert np.all(np.asarray(p) >= 0)
    np.testing.assert_allclose(p.sum(axis), 1.0, atol=1e-5)
    assert np.mean(np.asarray(p) == 0) > 0.3  # Sparse, unlike softmax.
  grad = jax.jit(jax.grad(lambda x: (wsa.sparsemax(x) * jnp.arange(9.0)[None, None]).sum()))(z)
  assert np.all(np.isfinite(np.asarray(grad)))


def _sorted_sparsemax(z):
  """The textbook algorithm (sort, cumulative sums, largest k with 1 + k z_(k) > cumsum)."""
  z_sorted = -np.sort(-z, axis=-1)
  cumsum = np.cumsum(z_sorted, axis=-1)
  k = np.arange(1, z.shape[-1] + 1)
  k_z = np.sum(1 + k * z_sorted > cumsum, axis=-1, keepdims=True)
  tau = (np.take_along_axis(cumsum, k_z - 1, axis=-1) - 1) / k_z
  return np.maximum(z - tau, 0.0)


@pytest.mark.parametrize("frames", [9, 400])  # Sorted (short rows) and bisected (long).
@pytest.mark.parametrize("scale", [0.01, 3.0, 300.0])
def test_sparsemax_equals_the_sorted_algorithm_and_its_jacobian(scale, frames):
  # Scores as small, medium and large as attention logits get; 400 frames as MIRD's audio.
  z = np.asarray(jax.random.normal(jax.random.key(2), (6, frames)), np.float64) * scale
  p = np.asarray(sparsemax(jnp.asarray(z, jnp.float32)))
  np.testing.assert_allclose(p, _sorted_sparsemax(z), atol=2e-6 * max(scale, 1))
  # Jacobian on the support S: d p / d z = diag(s) - s s^T / |S|, so the gradient of
  # sum(p * w) is s * (w - mean of w over S).
  w = np.asarray(jax.random.normal(jax.random.key(3), z.shape))
  grad = jax.jit(jax.grad(lambda x: (wsa.sparsemax(x) * w).sum()))(jnp.asarray(z, jnp.float32))
  s = (_sorted_sparsemax(z) > 0).astype(np.float64)
  mean_w = (s * w).sum(-1, keepdims=True) / s.sum(-1, keepdims=True)
  np.testing.assert_allclose(grad, s * (w - mean_w), atol=1e-5)


@pytest.mark.parametrize("frames", [9, 400])
def test_sparsemax_masks_on_both_paths(frames):
  """Rows of different valid lengths, huge scores in the padding, a row with none valid."""
  z = np.asarray(jax.random.normal(jax.random.key(4), (4, frames)), np.float32) * 2
  lengths = np.array([frames, frames // 2, 1, 0])
  mask = np.arange(frames)[None, :] < lengths[:, None]
  p = np.asarray(sparsemax(jnp.asarray(np.where(mask, z, 1e4)), jnp.asarray(mask)))
  assert np.all(p[~mask] == 0.0) and np.all(p[3] == 0.0)
  for row, n in enumerate(lengths[:3]):
    np.testing.assert_allclose(p[row, :n], _sorted_sparsemax(z[row, :n].astype(np.float64)),
                               atol=2e-6)


def test_masked_entries_get_exactly_zero_and_do_not_matter():
  z = jnp.array([[0.3, 5.0, 0.1, 9.0]])
  mask = jnp.array([[True, False, True, False]])
  p = sparsemax(z, mask)
  np.testing.assert_allclose(p, [[0.6, 0.0, 0.4, 0.0]], atol=1e-6)
  assert float(p[0, 1]) == 0.0 and float(p[0, 3]) == 0.0
  q = wsa.masked_softmax(z, mask)
  assert float(q[0, 1]) == 0.0 and float(q[0, 3]) == 0.0
  np.testing.assert_allclose(q.sum(), 1.0, atol=1e-6)


@pytest.mark.parametrize("fusion", ["wsa", "wa"])
def test_padded_frames_change_nothing_downstream(fusion):
  module = wsa.WordAlignedFusion(hidden=8, fusion=fusion, dropout=0.0)
  k = jax.random.split(jax.random.key(1), 4)
  e = jax.random.normal(k[0], (3, 5, 8))
  audio = jax.random.normal(k[1], (3, 6, 4))
  vision = jax.random.normal(k[2], (3, 7, 2))
  a_len, v_len = jnp.array([2, 6, 1]), jnp.array([7, 3, 4])
  params = jax.jit(module.init, static_argnums=6)(k[3], e, audio, a_len, vision, v_len, True)
  apply = jax.jit(lambda *args: module.apply(params, *args, True))
  out, weights = apply(e, audio, a_len, vision, v_len)
  pad_a = jnp.arange(6)[None, :, None] >= a_len[:, None, None]
  pad_v = jnp.arange(7)[None, :, None] >= v_len[:, None, None]
  garbage_a = jnp.where(pad_a, 1e3 * jax.random.normal(k[0], audio.shape), audio)
  garbage_v = jnp.where(pad_v, -1e3, vision)
  out2, weights2 = apply(e, garbage_a, a_len, garbage_v, v_len)
  np.testing.assert_allclose(out2, out, atol=1e-5)
  for name, length, total in (("audio", a_len, 6), ("vision", v_len, 7)):
    w = np.asarray(weights2[name])
    padded = np.arange(total)[None, None, :] >= np.asarray(length)[:, None, None]
    assert np.all(w[np.broadcast_to(padded, w.shape)] == 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  out3, _ = apply(e, 2 * audio, a_len, vision, v_len)
  assert np.abs(np.asarray(out3 - out)).max() > 1e-3  # Real frames do matter.


def test_unknown_fusion_is_named():
  module = wsa.WordAlignedFusion(hidden=4, fusion="mag")
  x = jnp.ones((1, 2, 4))
  with pytest.raises(ValueError, match="unknown fusion 'mag'; expected wsa or wa"):
    module.init(jax.random.key(0), x, x, jnp.array([2]), x, jnp.array([2]), True)
