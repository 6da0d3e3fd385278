"""The independent disentanglement check: the KSG MI estimator against closed forms, the
ridge probes against known linear structure, and the factor look-up by id."""

import numpy as np
import pytest

from mird_jax.evaluation import disentanglement


def _gaussians(n, dims, rho, seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, dims))
  return x, rho * x + np.sqrt(1 - rho ** 2) * rng.normal(size=(n, dims))


@pytest.mark.parametrize("rho", [0.5, 0.8, 0.95])
def test_ksg_matches_the_closed_form_mi_of_correlated_gaussians(rho):
  x, y = _gaussians(800, 1, rho, seed=int(rho * 100))
  exact = -0.5 * np.log(1 - rho ** 2)
  assert disentanglement.ksg_mi(x, y, k=3) == pytest.approx(exact, abs=0.08)


def test_ksg_is_near_zero_for_independent_and_grows_with_dependence():
  x, y = _gaussians(600, 4, 0.0, seed=1)
  assert abs(disentanglement.ksg_mi(x, y)) < 0.06
  values = [disentanglement.ksg_mi(*_gaussians(600, 4, rho, seed=2)) for rho in
            (0.2, 0.5, 0.8)]
  assert values[0] < values[1] < values[2], values
  # A 4-d pair with rho 0.8 holds 2.04 nats; the estimator is biased low, not high.
  assert 1.2 < values[2] < 2.2, values


def test_ksg_needs_more_points_than_neighbours():
  with pytest.raises(ValueError, match="more than k=3 points"):
    disentanglement.ksg_mi(np.zeros((3, 1)), np.zeros((3, 1)), 3)


def _splits(f, n=(300, 100, 200), noise=0.1, seed=0):
  rng = np.random.default_rng(seed)
  x, y = {}, {}
  for name, m in zip(("train", "valid", "test"), n):
    x[name] = rng.normal(size=(m, 6))
    y[name] = f(x[name]) + noise * rng.normal(size=m)
  return x, y


def test_ridge_probe_reads_a_linear_factor_and_not_an_independent_one():
  w = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 0.0])
  x, y = _splits(lambda x: x @ w)
  assert disentanglement.ridge_probe_r2(x, y) > 0.98
  x, y = _splits(lambda x: 0 * x[:, 0], noise=1.0)
  assert disentanglement.ridge_probe_r2(x, y) < 0.05
  # Multi-output targets (the 2-d nuisance factors): R^2 averaged over columns.
  x, _ = _splits(lambda x: x[:, 0])
  two = {k: np.stack([v[:, 0], np.random.default_rng(1).normal(size=len(v))], 1)
         for k, v in x.items()}
  assert disentanglement.ridge_probe_r2(x, two) == pytest.approx(0.5, abs=0.05)


def test_r2_of_a_perfect_and_a_mean_prediction():
  y = np.array([1.0, 2.0, 3.0, 4.0])
  assert disentanglement.r2(y, y) == 1.0
  assert disentanglement.r2(y, np.full(4, 2.5)) == 0.0


def test_factor_targets_follow_the_ids_and_name_a_missing_one():
  factors = {"id": np.array(["a", "b", "c"]), "shared": np.array([0.0, 1.0, 2.0]),
             "private": np.arange(9.0).reshape(3, 3),
             "nuisance": np.arange(18.0).reshape(3, 3, 2)}
  t = disentanglement.factor_targets(factors, ["c", "a"])
  np.testing.assert_array_equal(t["shared"], [2.0, 0.0])
  np.testing.assert_array_equal(t["private_a"], [7.0, 1.0])
  np.testing.assert_array_equal(t["nuisance_v"], [[16.0, 17.0], [4.0, 5.0]])
  assert set(t) == set(disentanglement.FACTORS)
  with pytest.raises(KeyError, match="no example 'zz'"):
    disentanglement.factor_targets(factors, ["a", "zz"])


def test_principal_components_keep_the_leading_directions():
  rng = np.random.default_rng(0)
  a, b, c = rng.normal(size=(3, 500))
  # Two near-copies of `a`: after per-column standardisation they make the top component.
  z = np.stack([a, a + 0.05 * b, b, c], 1)
  reduced = disentanglement.principal_components(z, 1)
  assert reduced.shape == (500, 1)
  assert abs(np.corrcoef(reduced[:, 0], a)[0, 1]) > 0.99
  assert disentanglement.principal_components(z, 0).shape == (500, 4)


def test_latent_scale_separates_shrinking_from_collapsing():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(400, 6))
  scale = disentanglement.latent_scale({"z_s": z, "small": 0.1 * z, "point": 0 * z + 3.0})
  var, norm = scale["variance"], scale["norm"]
  assert var["z_s"] == pytest.approx(np.var(z, axis=0).sum())
  assert var["small"] == pytest.approx(0.01 * var["z_s"])  # Variance is quadratic in scale,
  assert norm["small"] == pytest.approx(0.1 * norm["z_s"])  # the norm linear.
  # A latent collapsed onto one point has no spread but keeps its norm.
  assert var["point"] == pytest.approx(0.0, abs=1e-12)
  assert norm["point"] == pytest.approx(3.0 * np.sqrt(6))
