"""Closed-form probes: ridge regression on time-averaged features, per modality and all.

They measure how much each modality says about the label with no training loop: the
synthetic benchmark must show all three together clearly above any one, and the demo's
model must beat every single-modality probe. They return test predictions; the caller
scores them with its metric suite.
"""

import numpy as np

MODALITIES = ("text", "audio", "vision")
_LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # Chosen on the validation split.


def _time_mean(x_NxTxD, len_N):
  valid_NxT = np.arange(x_NxTxD.shape[1])[None, :] < len_N[:, None]
  return (x_NxTxD * valid_NxT[..., None]).sum(1) / len_N[:, None]


def _bag_of_words(split, vocabulary):
  """Per-example frequency of each token id of `vocabulary` among its real tokens."""
  ids, mask = split["text_ids"], split["text_mask"].astype(bool)
  col = np.searchsorted(vocabulary, ids)
  known = mask & (col < len(vocabulary)) & (vocabulary[np.minimum(col, len(vocabulary) - 1)]
                                            == ids)
  x = np.zeros((len(ids), len(vocabulary)), np.float32)
  rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
  np.add.at(x, (rows[known], col[known]), 1.0)
  return x / mask.sum(1, keepdims=True)


def features(splits: dict, modality: str) -> dict[str, np.ndarray]:
  """{split: [N, F]} time-averaged features of one modality (text: bag of words)."""
  if modality == "text":
    train = splits["train"]
    vocabulary = np.unique(train["text_ids"][train["text_mask"].astype(bool)])
    return {k: _bag_of_words(v, vocabulary) for k, v in splits.items()}
  return {k: _time_mean(v[modality], v[f"{modality}_len"]) for k, v in splits.items()}


def ridge(a, y_tr, b, lam):
  """Predictions on `b` of ridge regression fitted on (`a`, `y_tr`: [N] or [N, K]), with an
  unpenalised intercept, on features already centred on train (standardise)."""
  y_mu = y_tr.mean(0)
  if a.shape[1] > a.shape[0]:  # Dual form: N x N instead of F x F.
    alpha = np.linalg.solve(a @ a.T + lam * np.eye(len(a)), y_tr - y_mu)
    return b @ (a.T @ alpha) + y_mu
  w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y_tr - y_mu))
  return b @ w + y_mu


def _fit(x, y, lambdas):
  """Test predictions with the lambda of lowest validation MAE, and that lambda."""
  best = min(lambdas, key=lambda lam: np.mean(np.abs(
      ridge(x["train"], y["train"], x["valid"], lam) - y["valid"])))
  return ridge(x["train"], y["train"], x["test"], best), best


def standardise(x: dict) -> dict:
  """{split: features} scaled by the train split's mean and standard deviation."""
  mu, sd = x["train"].mean(0), x["train"].std(0) + 1e-8
  return {k: (v - mu) / sd for k, v in x.items()}


def _cross_fitted(x, y, lam, folds=5):
  """Out-of-fold train predictions, so the stacker sees honest ones."""
  n = len(y)
  out = np.empty(n)
  for k in range(folds):
    held = np.arange(n) % folds == k
    out[held] = ridge(x[~held], y[~held], x[held], lam)
  return out


def test_predictions(splits: dict) -> dict[str, np.ndarray]:
  """Test-split predictions of the probe on each modality alone and on all three together.

  Each modality gets its own ridge penalty (picked on valid). The joint probe stacks them:
  a least-squares combination of the three modality probes' predictions, fitted on their
  out-of-fold train predictions, so a wide block (bag of words) cannot drown a narrow one.
  """
  y = {k: splits[k]["label"].astype(np.float64) for k in splits}
  out, stacked = {}, {k: [] for k in splits}
  for m in MODALITIES:
    x = standardise({k: v.astype(np.float64) for k, v in features(splits, m).items()})
    out[m], lam = _fit(x, y, _LAMBDAS)
    stacked["train"].append(_cross_fitted(x["train"], y["train"], lam))
    for k in ("valid", "test"):
      stacked[k].append(ridge(x["train"], y["train"], x[k], lam))
  z = {k: np.stack(v, 1) for k, v in stacked.items()}
  w, *_ = np.linalg.lstsq(np.c_[z["train"], np.ones(len(z["train"]))], y["train"], rcond=None)
  out["all"] = np.c_[z["test"], np.ones(len(z["test"]))] @ w
  return out
