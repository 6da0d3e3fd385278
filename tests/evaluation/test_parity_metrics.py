"""Our metric suites against MMSA 2.2.1's own `MetricsTop` (tests/data/parity/metrics.npz,
written by tests/data/parity/make_metrics.py): random predictions and every pair of values
on a class boundary, for MOSI, MOSEI and SIMS. MMSA rounds each result to 4 decimals, so
agreement is to 5e-5; a boundary rule that differed would move an accuracy by 1/N (>= 0.002
here)."""

import numpy as np
import pytest

from mird_jax.evaluation import metrics
import parity

CASES = sorted({k.split("/")[0] for k in parity.fixture("metrics") if "/mmsa/" in k})


@pytest.mark.parametrize("case", CASES)
def test_every_metric_equals_mmsas_own(case):
  d = parity.fixture("metrics")
  suite = str(d[f"{case}/suite"])
  ours = metrics.all_metrics(d[f"{case}/preds"], d[f"{case}/labels"], dataset=suite)
  theirs = {k.split("/")[-1]: float(v) for k, v in d.items() if k.startswith(f"{case}/mmsa/")}
  assert set(theirs) == set(metrics.SIMS_KEYS if suite == "sims" else metrics.MMSA_KEYS)
  wrong = {k: (round(ours[k], 6), v) for k, v in theirs.items() if abs(ours[k] - v) > 5e-5}
  assert not wrong, f"{case}: (ours, MMSA) {wrong}"


def test_the_fixture_covers_the_sims_boundaries_in_float32():
  d = parity.fixture("metrics")
  labels = d["sims_edges/labels"]
  assert labels.dtype == np.float32
  for edge in (0.1, -0.1, 0.7, -0.7):
    assert np.any(labels == np.float32(edge))
