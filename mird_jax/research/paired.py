"""Paired comparisons over seeds: runs with the same seed share their data order and initial
draw, so two configs' runs pair by seed. Light (NumPy and SciPy), like summary.py."""

import math

import numpy as np
from scipy import stats


def at(row: dict, path: tuple):
  """The value at `path` in nested dicts, or None where the path does not exist."""
  value = row
  for key in path:
    value = value.get(key) if isinstance(value, dict) else None
  return value


def per_seed(summary: dict, path: tuple) -> dict[int, float]:
  """{seed: the finite value at `path` in that seed's row of a summary's per_seed}."""
  out = {}
  for row in summary["per_seed"]:
    value = at(row, path)
    if isinstance(value, (int, float)) and math.isfinite(value):
      out[row["seed"]] = float(value)
  return out


def paired(a: dict[int, float], b: dict[int, float]) -> dict:
  """Mean of a - b over the seeds both have, and the paired t-test's two-sided p-value
  (None with fewer than 2 pairs or no spread in the differences)."""
  common = sorted(set(a) & set(b))
  d = np.array([a[s] - b[s] for s in common])
  if not common:
    return {"n": 0, "diff": None, "p": None}
  p = None
  if len(common) > 1 and np.std(d) > 0:
    p = float(stats.ttest_rel([a[s] for s in common], [b[s] for s in common]).pvalue)
  return {"n": len(common), "diff": float(d.mean()), "p": p}


def text(test: dict) -> str:
  """"+0.123 (p=0.045, n=5)": a paired difference and its test, for a table cell."""
  if test["diff"] is None:
    return "n/a"
  p = "n/a" if test["p"] is None else f"{test['p']:.3f}"
  return f"{test['diff']:+.3f} (p={p}, n={test['n']})"
