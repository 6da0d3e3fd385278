"""Losses as plain functions: hand-computed values, masks, and the closed-form CLUB bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference
from mird_jax.training import losses


@pytest.mark.parametrize("b, d, seed", [(2, 1, 0), (7, 5, 1), (64, 16, 2)])
def test_closed_form_club_bound_equals_the_pairwise_formula(b, d, seed):
  rng = np.random.default_rng(seed)
  mu = rng.normal(size=(b, d)).astype(np.float32)
  logvar = np.tanh(rng.normal(size=(b, d))).astype(np.float32)
  y = (2.0 * rng.normal(size=(b, d)) + 0.5).astype(np.float32)
  closed = jax.jit(jax.value_and_grad(losses.club_upper_bound, argnums=(0, 2)))
  pairwise = jax.jit(jax.value_and_grad(reference.club_upper_bound_pairwise, argnums=(0, 2)))
  (v1, g1), (v2, g2) = closed(mu, logvar, y), pairwise(mu, logvar, y)
  np.testing.assert_allclose(v1, v2, rtol=1e-5, atol=1e-5)
  for a, c in zip(g1, g2):
    np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def test_club_bound_is_zero_for_independent_constant_predictions():
  y = jnp.array([[1.0], [-1.0]])
  mu = jnp.zeros((2, 1))  # q(y|x) ignores x: positive and negative terms are equal.
  assert float(losses.club_upper_bound(mu, jnp.zeros((2, 1)), y)) == pytest.approx(0.0)
  # Perfect prediction of y from x: positive term 0, negative term -(mean sq dev)/2 per dim.
  assert float(losses.club_upper_bound(y, jnp.zeros((2, 1)), y)) == pytest.approx(1.0)


def test_club_log_likelihood_by_hand():
  mu, logvar, y = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, np.log(2.0)]]), jnp.array([[0.0, 2.0]])
  # -(1)^2/1 - 0  +  -(2)^2/2 - log 2
  assert float(losses.club_log_likelihood(mu, logvar, y)) == pytest.approx(-1 - 2 - np.log(2))


def test_task_losses():
  p, y = jnp.array([1.0, -1.0, 0.5]), jnp.array([0.0, -2.0, 0.5])
  assert float(losses.task_loss(p, y, "mse")) == pytest.approx(2 / 3)
  assert float(losses.task_loss(p, y, "l1")) == pytest.approx(2 / 3)
  assert float(losses.task_loss(p, y + 1, "l1")) == pytest.approx((0 + 0 + 1) / 3)
  with pytest.raises(ValueError, match="loss.task='huber'"):
    losses.task_loss(p, y, "huber")


def test_frame_reconstruction_counts_valid_frames_only():
  target = jnp.zeros((2, 3, 2))
  recon = jnp.ones((2, 3, 2))
  lengths = jnp.array([1, 2])
  assert float(losses.recon_frames(recon, target, lengths)) == pytest.approx(1.0)
  # Errors in padded frames change nothing; errors in valid frames do.
  recon2 = recon.at[0, 1:].set(100.0).at[1, 2].set(-50.0)
  assert float(losses.recon_frames(recon2, target, lengths)) == pytest.approx(1.0)
  recon3 = recon.at[1, 1, 0].set(3.0)  # (9 + 1) / 2 for that frame, 3 valid frames.
  assert float(losses.recon_frames(recon3, target, lengths)) == pytest.approx((1 + 1 + 5) / 3)


def test_token_cross_entropy_over_real_tokens_only():
  logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]]))
  ids = jnp.array([[0, 1, 2]])
  mask = jnp.array([[1, 1, 0]])
  expected = -(np.log(0.5) + np.log(0.8)) / 2
  assert float(losses.recon_tokens_ce(logits, ids, mask)) == pytest.approx(expected, rel=1e-5)
  garbage = logits.at[0, 2].set(jnp.array([9.0, -9.0, 0.0]))
  assert float(losses.recon_tokens_ce(garbage, ids, mask)) == pytest.approx(expected, rel=1e-5)
  emb = jnp.ones((1, 3, 4))
  assert float(losses.recon_tokens_mse(emb.at[0, 2].set(7.0), emb, mask)) == 0.0


def test_orthogonality():
  z_s = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  z_m = jnp.array([[0.0, 0.0], [0.0, 1.0]])
  assert float(losses.orthogonality(z_s, z_m)) == 0.0
  # z_s^T z_m / B = [[0, 1/2], [0, 0]] when both rows align on example 0.
  assert float(losses.orthogonality(z_s, jnp.array([[0.0, 1.0], [0.0, 0.0]]))) == 0.25


def test_combine_log_and_weighted():
  terms = {"task": jnp.array(2.0), "recon/text": jnp.array(4.0), "mi/l_a": jnp.array(-0.5)}
  weights = {"task": 1.0, "recon/text": 0.5, "mi/l_a": 2.0}
  log_total = losses.combine(terms, weights, "log", 0.0)
  assert float(log_total) == pytest.approx(np.log(2) + 0.5 * np.log(4) - 1.0)
  assert float(losses.combine(terms, weights, "weighted", 0.0)) == pytest.approx(2 + 2 - 1)
  with pytest.raises(ValueError, match="loss.combine='sum'"):
    losses.combine(terms, weights, "sum", 0.0)


def test_per_example_sums_pool_into_the_batch_masked_mean():
  """Splitting a batch in two and pooling the per-example (sum, count) pairs gives the
  loss of the whole batch: what the split-level diagnostics rely on."""
  rng = np.random.default_rng(0)
  recon, target = rng.normal(size=(2, 5, 7, 3))
  length = np.array([7, 1, 4, 0, 6])
  sums = [losses.recon_frames_sums(recon[s], target[s], length[s])
          for s in (slice(0, 2), slice(2, 5))]
  pooled = sum(float(np.sum(t)) for t, _ in sums) / sum(float(np.sum(c)) for _, c in sums)
  assert pooled == pytest.approx(float(losses.recon_frames(recon, target, length)), rel=1e-6)
  logits, ids = rng.normal(size=(5, 4, 11)), rng.integers(0, 11, size=(5, 4))
  mask = (np.arange(4)[None] < np.array([4, 2, 1, 3, 0])[:, None]).astype(np.float32)
  total, count = losses.recon_tokens_ce_sums(logits, ids, mask)
  np.testing.assert_array_equal(count, [4, 2, 1, 3, 0])
  # Example 1's two tokens, by hand.
  logp = logits[1] - np.log(np.exp(logits[1]).sum(-1, keepdims=True))
  assert float(total[1]) == pytest.approx(-(logp[0, ids[1, 0]] + logp[1, ids[1, 1]]), rel=1e-5)


def test_the_orthogonality_penalty_pushes_the_latents_apart():
  """The MIRD objective's orthogonality terms (model.constraint=orthogonal) differentiate
  through both latents of each pair: the gradient is the analytic one, and a step along it
  lowers the weighted total. A stop_gradient on their inputs keeps every value and fails
  this test."""
  from mird_jax.training import objective  # pylint: disable=g-import-not-at-top
  from mird_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  b, d = 6, 4
  aux = {f"z_{k}": jnp.asarray(rng.normal(size=(b, d)), jnp.float32) for k in "slav"}
  terms = tuple(f"orthogonal/s_{m}" for m in "lav")
  cfg = step_lib.StepConfig(task="mse", combine="log", log_eps=1e-8, terms=terms,
                            constraint="orthogonal", estimators=False, club_steps=0,
                            refresh_latents=False, text_target="vocab_logits",
                            kl_reduce="mean", accumulate=1, scale_free=False)
  hparams = {"w/orthogonal": 0.5}

  def total(latents):
    sums = objective.term_sums(jnp.zeros(b), latents, {}, {}, jnp.zeros(b), cfg)
    assert set(sums) == set(terms)
    return objective.total(objective.finish(sums), hparams, cfg)

  value, grads = jax.value_and_grad(total)(aux)
  z_s = np.asarray(aux["z_s"], np.float64)
  want_s = sum(2.0 / b**2 * z @ z.T @ z_s for z in (np.asarray(aux[f"z_{m}"]) for m in "lav"))
  np.testing.assert_allclose(grads["z_s"], 0.5 * want_s, rtol=1e-4)
  for m in "lav":
    z_m = np.asarray(aux[f"z_{m}"], np.float64)
    np.testing.assert_allclose(grads[f"z_{m}"], 0.5 * 2.0 / b**2 * z_s @ z_s.T @ z_m, rtol=1e-4)
  stepped = {k: v - 0.05 * grads[k] for k, v in aux.items()}
  assert float(total(stepped)) < float(value) - 1e-3
