"""Feature standardisation with train-split statistics (`data.standardize`).

Real feature files are not on one scale (openSMILE values reach the hundreds, 3D-CNN ones
~200, COVAREP has columns near 0): each audio and vision feature is shifted and scaled by
the mean and standard deviation of the train split's valid frames, then applied unchanged
to every split, so validation and test statistics never enter. Padding stays zero.
"""

import numpy as np

MODALITIES = ("audio", "vision")
_MIN_STD = 1e-6  # A constant feature is centred, not scaled.


def train_statistics(train: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{modality: (mean [d], std [d])} over the valid frames of the train split."""
  out = {}
  for m in MODALITIES:
    frames = train[m]
    valid_NxT = np.arange(frames.shape[1])[None, :] < train[f"{m}_len"][:, None]
    rows = frames[valid_NxT].astype(np.float64)
    mean, std = rows.mean(0), rows.std(0)
    out[m] = (mean, np.where(std < _MIN_STD, 1.0, std))
  return out


def apply(split: dict[str, np.ndarray], stats) -> dict[str, np.ndarray]:
  """A copy of `split` with its audio and vision standardised by `stats`."""
  out = dict(split)
  for m in MODALITIES:
    mean, std = stats[m]
    valid = (np.arange(split[m].shape[1])[None, :] < split[f"{m}_len"][:, None])[..., None]
    out[m] = np.where(valid, (split[m] - mean) / std, 0.0).astype(np.float32)
  return out


def standardize(splits: dict[str, dict[str, np.ndarray]]):
  """Every split (and pool) standardised by the train split's statistics; returns
  (splits, statistics)."""
  stats = train_statistics(splits["train"])
  return {name: apply(split, stats) for name, split in splits.items()}, stats
