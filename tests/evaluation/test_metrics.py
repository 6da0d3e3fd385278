"""Metric suite: hand-computed cases from docs/metrics.md, and agreement with sklearn/scipy."""

import math

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as skm

from mird_jax.evaluation import metrics


def test_zero_predictions_split_has0_non0_and_mag():
  # Index 0 predicts exactly 0 for a positive label; index 3 predicts > 0 for a negative.
  p = [0.0, 0.5, -0.5, 0.3]
  y = [1.0, 0.0, -1.0, -2.0]
  mmsa, mag = metrics.mmsa_regression(p, y), metrics.mag_protocol(p, y)
  assert mmsa["Has0_acc_2"] == pytest.approx(3 / 4)
  assert mmsa["Non0_acc_2"] == pytest.approx(1 / 3)  # p = 0 is negative for Non0 ...
  assert mag["Acc2"] == pytest.approx(2 / 3)  # ... and positive for the MAG protocol.
  assert mmsa["MAE"] == pytest.approx((1 + 0.5 + 0.5 + 2.3) / 4)
  assert mag["MAE"] == pytest.approx((1 + 0.5 + 2.3) / 3)  # Non-zero labels only.


def test_weighted_f1_weights_by_truth_support():
  t = np.array([True, True, False, False])
  q = np.array([True, True, False, True])
  # Class True: P = 2/3, R = 1, F1 = 0.8; class False: P = 1, R = 1/2, F1 = 2/3.
  assert metrics.weighted_f1(t, q) == pytest.approx(0.5 * 0.8 + 0.5 * 2 / 3)
  # Swapped (MulT's call) weights by prediction support instead: a different number.
  assert metrics.weighted_f1(q, t) == pytest.approx(0.75 * 0.8 + 0.25 * 2 / 3)
  p, y = np.where(q, 1.0, -1.0), np.where(t, 1.0, -1.0)
  assert metrics.mmsa_regression(p, y)["Has0_F1_score"] == pytest.approx(0.5 * 0.8 + 0.5 * 2 / 3)


def test_all_one_class_predictions_use_zero_division_zero():
  y = [2.0, -1.0, -0.4, -3.0]
  p = [1.0, 1.0, 0.2, 2.5]  # Every prediction positive.
  # Class True: P = 1/4, R = 1, F1 = 0.4 (support 1); class False: never predicted, F1 = 0.
  out = metrics.mmsa_regression(p, y)
  assert out["Has0_F1_score"] == pytest.approx(0.1)
  assert out["Non0_F1_score"] == pytest.approx(0.1)
  assert out["Has0_acc_2"] == pytest.approx(0.25)
  t = np.asarray(y) >= 0
  assert out["Has0_F1_score"] == pytest.approx(
      skm.f1_score(t, np.asarray(p) >= 0, average="weighted", zero_division=0))


def test_constant_predictions_give_nan_corr_not_a_crash():
  y = [1.0, -2.0, 0.0, 2.4]
  out = metrics.all_metrics([0.7] * 4, y)
  assert math.isnan(out["Corr"]) and math.isnan(out["MAG/Corr"])
  assert out["MAE"] == pytest.approx(np.mean(np.abs(0.7 - np.asarray(y))))
  assert math.isnan(metrics.mmsa_regression([1.0, 2.0], [3.0, 3.0])["Corr"])


def test_clipping_and_round_half_to_even():
  p = np.array([3.7, -2.6, 2.5, -0.5, 1.5, 0.5, 4.0])
  y = np.array([3.0, -3.0, 2.0, 0.0, 2.0, 0.0, -3.0])
  # 7 classes: round(clip(p, -3, 3)) = [3, -3, 2, -0, 2, 0, 3]: 2.5 -> 2 and 0.5 -> 0 (half to
  # even); round-half-away-from-zero would give 3 and 1 and miss both.
  out = metrics.mmsa_regression(p, y)
  assert out["Mult_acc_7"] == pytest.approx(6 / 7)
  # 5 classes: clip to +-2 first, so p = 3.7 -> 2 matches y = 3 -> 2, and -2.6 matches -3.
  assert out["Mult_acc_5"] == pytest.approx(6 / 7)
  assert metrics.mag_protocol(p, y)["Acc7"] == pytest.approx(6 / 7)


def test_labels_exactly_zero():
  y = np.zeros(5)
  p = np.array([0.1, -0.2, 0.0, 0.3, -0.1])
  mmsa, mag = metrics.mmsa_regression(p, y), metrics.mag_protocol(p, y)
  assert mmsa["Has0_acc_2"] == pytest.approx(3 / 5)
  for v in (mmsa["Non0_acc_2"], mmsa["Non0_F1_score"], mag["Acc2"], mag["F1"], mag["MAE"],
            mag["Corr"]):
    assert math.isnan(v)
  assert mag["Acc7"] == pytest.approx(1.0)


def test_sims_clips_before_everything():
  p = [-1.5, -0.1, 0.1, 0.0, 0.7, 0.71]
  y = [-1.0, -0.05, 0.05, 0.0, 0.69, 1.0]
  out = metrics.sims_regression(p, y)
  assert out["Mult_acc_2"] == pytest.approx(1.0)
  assert out["Mult_acc_3"] == pytest.approx(5 / 6)  # -0.1 falls in (-1.01, -0.1].
  assert out["Mult_acc_5"] == pytest.approx(5 / 6)
  assert out["MAE"] == pytest.approx((0 + 0.05 + 0.05 + 0 + 0.01 + 0.29) / 6)
  assert tuple(metrics.all_metrics(p, y, dataset="sims")) == metrics.SIMS_KEYS


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_sklearn_and_scipy(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(20, 400))
  y = rng.integers(-15, 16, size=n) / 5.0  # The MOSI label grid, with exact zeros.
  y[rng.random(n) < 0.05] = 0.0
  p = rng.normal(0.3 * y, 1.5)
  p[rng.random(n) < 0.05] = 0.0  # Exact-zero predictions exercise >= vs >.
  out = metrics.all_metrics(p, y)
  nz = y != 0
  f1 = lambda t, q: skm.f1_score(t, q, average="weighted", zero_division=0)
  expected = {
      "Has0_acc_2": skm.accuracy_score(y >= 0, p >= 0),
      "Has0_F1_score": f1(y >= 0, p >= 0),
      "Non0_acc_2": skm.accuracy_score(y[nz] > 0, p[nz] > 0),
      "Non0_F1_score": f1(y[nz] > 0, p[nz] > 0),
      "Mult_acc_7": skm.accuracy_score(np.round(np.clip(y, -3, 3)), np.round(np.clip(p, -3, 3))),
      "MAE": skm.mean_absolute_error(y, p),
      "Corr": scipy.stats.pearsonr(p, y).statistic,
      "MAG/Acc2": skm.accuracy_score(y[nz] >= 0, p[nz] >= 0),
      "MAG/F1": f1(y[nz] >= 0, p[nz] >= 0),
      "MAG/MAE": skm.mean_absolute_error(y[nz], p[nz]),
      "MAG/Corr": scipy.stats.pearsonr(p[nz], y[nz]).statistic,
  }
  for k, v in expected.items():
    assert out[k] == pytest.approx(v, abs=1e-12), k
  t, q = rng.integers(0, 7, size=n), rng.integers(0, 7, size=n)
  assert metrics.weighted_f1(t, q) == pytest.approx(f1(t, q), abs=1e-12)


def test_suite_names():
  out = metrics.all_metrics([0.1, -0.2, 0.5], [1.0, -1.0, 0.0], dataset="mosei")
  assert list(out) == list(metrics.MMSA_KEYS) + [f"MAG/{k}" for k in metrics.MAG_KEYS]
  assert tuple(out) == metrics.names("mosei")


@pytest.mark.parametrize("p, y, match", [
    ([1.0, 2.0], [1.0], "2 values but labels have 1"),
    ([], [], "zero examples"),
    ([1.0, float("nan")], [1.0, 2.0], "predictions contain 1 non-finite.*index 1"),
    ([1.0, 2.0], [float("inf"), 2.0], "labels contain 1 non-finite.*index 0"),
])
def test_bad_input_is_named(p, y, match):
  with pytest.raises(ValueError, match=match):
    metrics.mmsa_regression(p, y)


def test_unknown_dataset():
  with pytest.raises(ValueError, match="'iemocap'"):
    metrics.all_metrics([1.0], [1.0], dataset="iemocap")
