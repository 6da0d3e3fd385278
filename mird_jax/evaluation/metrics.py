"""Sentiment-regression metrics, exactly as docs/metrics.md defines them.

Two suites are always reported side by side, because papers disagree on which one they use:
- `mmsa_regression`: the MMSA `eval_mosi_regression` dictionary (Has0/Non0 Acc-2 and
  weighted F1, Acc-5, Acc-7, and MAE/Corr over all examples).
- `mag_protocol`: what the MAG-BERT, MIB and MIRD code reports (Acc-2, F1, MAE, Corr on the
  non-zero-label subset, with p = 0 counted as positive; Acc-7 over all examples).
`sims_regression` is MMSA's CH-SIMS variant (everything clipped to [-1, 1], binned classes).

All functions take the full concatenated predictions and labels of a split (never per-batch
means) and compute on the host in float64. Values are not rounded: MMSA rounds to 4
decimals for display only, and rounding before aggregating seeds would bias the means.
A metric that is undefined on its input (Pearson r of a constant vector, anything on an
empty non-zero subset) is NaN, reported rather than raised.
"""

import warnings

import numpy as np

MMSA_KEYS = ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
             "Mult_acc_5", "Mult_acc_7", "MAE", "Corr")
MAG_KEYS = ("Acc2", "F1", "MAE", "Corr", "Acc7")
SIMS_KEYS = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")


def _as_pair(preds, labels):
  """Flattens both inputs to float64 vectors and checks they can be scored."""
  p = np.asarray(preds, dtype=np.float64).reshape(-1)
  y = np.asarray(labels, dtype=np.float64).reshape(-1)
  if p.shape != y.shape:
    raise ValueError(f"predictions have {p.size} values but labels have {y.size}")
  if p.size == 0:
    raise ValueError("cannot compute metrics on zero examples")
  for name, v in (("predictions", p), ("labels", y)):
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
      raise ValueError(f"{name} contain {bad.size} non-finite values "
                       f"(first at index {bad[0]}: {v[bad[0]]})")
  return p, y


def accuracy(a, b) -> float:
  a, b = np.asarray(a), np.asarray(b)
  if a.size == 0:
    return float("nan")
  return float(np.mean(a == b))


def weighted_f1(y_true, y_pred) -> float:
  """scikit-learn's f1_score(y_true, y_pred, average='weighted'), zero_division=0.

  The per-class F1 is weighted by the class's support in `y_true`, so the argument order
  matters (MulT swaps it; we do not).
  """
  t, q = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
  if t.size == 0:
    return float("nan")
  total = 0.0
  for c in np.union1d(t, q):
    tp = np.sum((t == c) & (q == c))
    predicted, actual = np.sum(q == c), np.sum(t == c)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total += actual / t.size * f1
  return float(total)


def pearson(p, y) -> float:
  """np.corrcoef(p, y)[0, 1]; NaN when either input is constant or has < 2 values."""
  p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
  if p.size < 2 or np.all(p == p[0]) or np.all(y == y[0]):
    return float("nan")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return float(np.corrcoef(p, y)[0, 1])


def _multiclass_acc(p, y, bound):
  # np.round is round-half-to-even, as in MMSA (and jnp.round).
  return accuracy(np.round(np.clip(p, -bound, bound)), np.round(np.clip(y, -bound, bound)))


def mmsa_regression(preds, labels) -> dict[str, float]:
  """MMSA `eval_mosi_regression` (identical for MOSEI)."""
  p, y = _as_pair(preds, labels)
  nz = y != 0
  return {
      "Has0_acc_2": accuracy(p >= 0, y >= 0),
      "Has0_F1_score": weighted_f1(y >= 0, p >= 0),
      # Non0 uses a strict > 0 on both sides: a prediction of exactly 0 counts as negative.
      "Non0_acc_2": accuracy(p[nz] > 0, y[nz] > 0),
      "Non0_F1_score": weighted_f1(y[nz] > 0, p[nz] > 0),
      "Mult_acc_5": _multiclass_acc(p, y, 2.0),
      "Mult_acc_7": _multiclass_acc(p, y, 3.0),
      "MAE": float(np.mean(np.abs(p - y))),
      "Corr": pearson(p, y),
  }


def mag_protocol(preds, labels) -> dict[str, float]:
  """The MAG-BERT `test_score_model` protocol used by the MIB and MIRD code.

  MAE, Corr, Acc2 and F1 are computed on the non-zero-label subset S with p >= 0 counted as
  positive; Acc7 (MIB only; MIRD computes none) is over all examples.
  """
  p, y = _as_pair(preds, labels)
  nz = y != 0
  ps, ys = p[nz], y[nz]
  return {
      "Acc2": accuracy(ys >= 0, ps >= 0),
      "F1": weighted_f1(ys >= 0, ps >= 0),
      "MAE": float(np.mean(np.abs(ps - ys))) if ys.size else float("nan"),
      "Corr": pearson(ps, ys),
      "Acc7": _multiclass_acc(p, y, 3.0),
  }


def _bin(v, edges):
  """Index of the half-open bin (edges[i], edges[i+1]] that holds each value, compared in
  v's dtype (edges cast to it), as MMSA's `>`/`<=` against Python floats are."""
  return np.searchsorted(np.asarray(edges, v.dtype), v, side="left") - 1


def sims_regression(preds, labels) -> dict[str, float]:
  """MMSA's CH-SIMS regression metrics: clip to [-1, 1] first, then bin. The classes are
  decided in float32, MMSA's dtype: float32(0.1) lies above the float64 0.1, so a value on
  a boundary (+-0.1, +-0.7) would otherwise change class. MAE and Corr stay in float64."""
  p, y = _as_pair(preds, labels)
  p, y = np.clip(p, -1.0, 1.0), np.clip(y, -1.0, 1.0)
  p32, y32 = p.astype(np.float32), y.astype(np.float32)
  bins = {2: (-1.01, 0.0, 1.01),
          3: (-1.01, -0.1, 0.1, 1.01),
          5: (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)}
  out = {f"Mult_acc_{k}": accuracy(_bin(p32, e), _bin(y32, e)) for k, e in bins.items()}
  out["F1_score"] = weighted_f1(_bin(y32, bins[2]), _bin(p32, bins[2]))
  out["MAE"] = float(np.mean(np.abs(p - y)))
  out["Corr"] = pearson(p, y)
  return {k: out[k] for k in SIMS_KEYS}


def names(dataset: str) -> tuple[str, ...]:
  """The keys `all_metrics` returns for `dataset`, in order."""
  if dataset == "sims":
    return SIMS_KEYS
  if dataset not in ("mosi", "mosei"):
    raise ValueError(f"unknown metric dataset {dataset!r}; expected mosi, mosei or sims")
  return MMSA_KEYS + tuple(f"MAG/{k}" for k in MAG_KEYS)


def all_metrics(preds, labels, *, dataset: str = "mosi") -> dict[str, float]:
  """The flat dictionary every split report uses.

  MOSI/MOSEI: the MMSA suite plus the MAG protocol under `MAG/*`. SIMS: MMSA's SIMS suite
  (the MAG protocol is defined for the [-3, 3] scale only).
  """
  names(dataset)  # Rejects an unknown dataset before any work.
  if dataset == "sims":
    return sims_regression(preds, labels)
  mag = {f"MAG/{k}": v for k, v in mag_protocol(preds, labels).items()}
  return {**mmsa_regression(preds, labels), **mag}
