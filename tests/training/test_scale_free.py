"""loss.scale_free (our extension): the CLUB estimators and the MI and orthogonality
penalties read latents standardised over the batch, so that shrinking a latent cannot meet
a penalty. Without it, shrinking z_s lowers both penalties; with it, neither moves and
its gradient along the scale of z_s is zero, while the penalty still responds to what the
latents share."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mird_jax.models import club
from mird_jax.training import diagnostics
from mird_jax.training import losses
from mird_jax.training import objective
from mird_jax.training import step as step_lib

_B, _D = 32, 4
_TERMS = tuple(f"mi/{x}_{y}" for x, y in club.PAIRS) + tuple(f"orthogonal/s_{m}" for m in "lav")


def _cfg(scale_free: bool, constraint: str):
  return step_lib.StepConfig(
      task="mse", combine="weighted", log_eps=1e-8,
      terms=tuple(t for t in _TERMS if t.startswith("mi/" if constraint == "mim" else "orth")),
      constraint=constraint, estimators=constraint == "mim", club_steps=1,
      refresh_latents=False, text_target="vocab_logits", kl_reduce="mean", accumulate=1,
      scale_free=scale_free)


def _latents(shared: float):
  """z_s and three specific latents that each carry `shared` of one common factor."""
  rng = np.random.default_rng(0)
  common = rng.normal(size=(_B, _D))
  z = {"z_s": common + 0.3 * rng.normal(size=(_B, _D))}
  for m in "lav":
    z[f"z_{m}"] = shared * common + rng.normal(size=(_B, _D))
  return {k: jnp.asarray(v, jnp.float32) for k, v in z.items()}


_ESTIMATOR = club.Club(hidden=8, d_y=_D, init_scheme="flax")
_EST_PARAMS = _ESTIMATOR.init(jax.random.key(0), jnp.zeros((1, _D)))["params"]


def _penalty(z, cfg):
  """The weighted MI or orthogonality total of the latents `z`, as the objective has it:
  estimator stats from penalty_latents (one estimator, the same for every pair)."""
  z_pen = objective.penalty_latents(z, cfg)
  stats = {}
  if cfg.constraint == "mim":
    stats = {(x, y): _ESTIMATOR.apply({"params": _EST_PARAMS}, z_pen[f"z_{x}"])
             for x, y in club.PAIRS}
  sums = objective.term_sums(jnp.zeros(_B), z, stats, {}, jnp.zeros(_B), cfg, z_pen)
  return objective.total(objective.finish(sums), {"w/mi": 1.0, "w/orthogonal": 1.0}, cfg)


def test_standardise_over_the_real_rows():
  rng = np.random.default_rng(1)
  z = rng.normal(3.0, 5.0, size=(10, 3)).astype(np.float32)
  mask = np.array([1] * 7 + [0] * 3, np.float32)
  z[7:] = 1e6  # Padding rows never enter the statistics.
  out = np.asarray(losses.standardise(z, mask))
  np.testing.assert_allclose(out[:7].mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(out[:7].var(0), 1.0, atol=1e-3)
  np.testing.assert_allclose(np.asarray(losses.standardise(0.2 * z[:7] - 4.0)), out[:7],
                             atol=1e-3)


@pytest.mark.parametrize("constraint", ["mim", "orthogonal"])
def test_shrinking_z_s_lowers_the_penalty_only_without_scale_free(constraint):
  z = _latents(shared=1.0)
  shrunk = dict(z, z_s=0.05 * z["z_s"])
  plain, free = _cfg(False, constraint), _cfg(True, constraint)
  assert float(_penalty(shrunk, plain)) < float(_penalty(z, plain)) - 1e-3
  assert float(_penalty(shrunk, free)) == pytest.approx(float(_penalty(z, free)), rel=1e-3)
  # The scale of z_s gets no gradient from the scale-free penalty, some from the plain one.
  along_scale = lambda cfg: jax.grad(lambda c: _penalty(dict(z, z_s=c * z["z_s"]), cfg))(1.0)
  assert abs(float(along_scale(free))) < 1e-3 * abs(float(along_scale(plain)))
  # What the latents share still counts: less sharing, a lower scale-free penalty.
  if constraint == "orthogonal":
    assert float(_penalty(_latents(shared=0.0), free)) < 0.5 * float(_penalty(z, free))


def test_split_diagnostics_read_what_the_estimators_were_fitted_on():
  """With scale_free, rows carry each batch's standardised y (club_y/x_y) and the split's
  bound uses it; the orthogonality terms are on the split's standardised latents."""
  z = {k: np.asarray(v) for k, v in _latents(shared=1.0).items()}
  cfg = dataclasses.replace(_cfg(True, "mim"), terms=("mi/s_a",))
  mu, logvar = np.zeros((_B, _D)), np.zeros((_B, _D))
  standard = np.asarray(losses.standardise(z["z_a"]))
  rows = {"pred": np.zeros(_B), **z, "club_mu/s_a": mu, "club_logvar/s_a": logvar,
          "club_y/s_a": standard}
  got = diagnostics.split_terms(rows, np.zeros(_B), cfg, {"w/task": 1.0, "w/mi": 1.0})
  assert got["mi/s_a"] == pytest.approx(float(losses.club_upper_bound(mu, logvar, standard)))
  want = losses.orthogonality(losses.standardise(z["z_s"]), losses.standardise(z["z_l"]))
  assert got["orthogonal/s_l"] == pytest.approx(float(want), rel=1e-5)
  scaled = dict(rows, z_s=100 * z["z_s"])
  assert diagnostics.split_terms(scaled, np.zeros(_B), cfg, {"w/task": 1.0, "w/mi": 1.0})[
      "orthogonal/s_l"] == pytest.approx(got["orthogonal/s_l"], rel=1e-4)


def test_the_estimators_fit_the_standardised_latents():
  """With scale_free the estimator updates see what the penalty reads: their fit (and its
  reported NLL) is the same for latents 1000x larger; without it, it is not."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from mird_jax.training import estimators  # pylint: disable=g-import-not-at-top

  class Estimators(nn.Module):
    def setup(self):
      self.club = {f"{x}_{y}": club.Club(hidden=8, d_y=_D, init_scheme="flax")
                   for x, y in club.PAIRS}

    def __call__(self, z):
      return self.club_stats(z)

    def club_stats(self, aux):
      return {(x, y): self.club[f"{x}_{y}"](aux[f"z_{x}"]) for x, y in club.PAIRS}

  model, rules, tx = Estimators(), ((r"club_.*", "club"),), optax.adam(1e-2)
  z = _latents(shared=1.0)
  params = model.init(jax.random.key(0), z)["params"]

  def fit(latents, scale_free):
    cfg = dataclasses.replace(_cfg(scale_free, "mim"), club_steps=3)
    opt = tx.init(estimators.club_leaves(params, rules))
    out, _, before, after = estimators.fit(
        params, opt, latents, None, None, jnp.zeros(3), model=model, tx_club=tx,
        rules=rules, cfg=cfg)
    return out, float(before), float(after)

  big = {k: 1000.0 * v for k, v in z.items()}
  (p1, b1, a1), (p2, b2, a2) = fit(z, True), fit(big, True)
  assert a1 < b1  # The fit learns,
  assert (b1, a1) == pytest.approx((b2, a2), rel=1e-4)  # the same whatever the scale.
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5), p1, p2)
  assert fit(big, False)[1] != pytest.approx(b1, rel=1e-2)
