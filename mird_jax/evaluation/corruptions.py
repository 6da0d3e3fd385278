"""Test-time corruptions of the inputs (the robustness check, mird_jax/runs/robustness.py):
plain NumPy on the host batches that the eval stream yields, each a pure function of the
batch, the condition and a seed, so a condition is the same on every run and any number of
hosts (every example draws from a key of (seed, condition, its dataset position)).

A condition is one of:
  clean            the test split as it is
  remove:text      the transcript reduced to its first and last real token ([CLS] [SEP]
                   for a BERT tokenizer): the empty sentence
  remove:audio     the audio frames replaced by one zero frame (length 1), as if absent;
  remove:vision    the same for vision
  noise:SIGMA      Gaussian noise of SIGMA x each feature's standard deviation (over the
                   scored split's valid frames) added to every valid audio and vision frame
  drop:RATE        each valid audio and vision frame dropped with probability RATE, the
                   kept ones moved up and the lengths shortened (one frame kept at least)
"""

import numpy as np

MODALITIES = ("text", "audio", "vision")
_FRAMES = ("audio", "vision")


def parse(condition: str) -> tuple[str, str | float | None]:
  """("clean", None) | ("remove", modality) | ("noise", sigma) | ("drop", rate); a
  malformed condition raises ValueError naming it."""
  kind, _, arg = condition.partition(":")
  if kind == "clean" and not arg:
    return kind, None
  if kind == "remove" and arg in MODALITIES:
    return kind, arg
  if kind in ("noise", "drop"):
    try:
      value = float(arg)
    except ValueError:
      value = None
    if value is not None and (value >= 0 if kind == "noise" else 0 <= value < 1):
      return kind, value
  raise ValueError(f"robustness condition {condition!r}: expected clean, remove:text|audio|"
                   "vision, noise:SIGMA (SIGMA >= 0) or drop:RATE (0 <= RATE < 1)")


def feature_std(batches) -> dict[str, np.ndarray]:
  """{audio, vision: per-feature standard deviation over the valid frames of the real
  examples of `batches`} (the noise conditions' scale)."""
  sums = {m: [0.0, 0.0, 0.0] for m in _FRAMES}
  for b in batches:
    for m in _FRAMES:
      valid = _valid(b, m) & (b["mask"] > 0)[:, None]
      x = b[m][valid].astype(np.float64)
      sums[m][0] += len(x)
      sums[m][1] = sums[m][1] + x.sum(0)
      sums[m][2] = sums[m][2] + (x ** 2).sum(0)
  out = {}
  for m, (n, s, s2) in sums.items():
    mean = s / max(n, 1.0)
    out[m] = np.sqrt(np.maximum(s2 / max(n, 1.0) - mean ** 2, 0.0)).astype(np.float32)
  return out


def _valid(batch, m):
  t = batch[m].shape[1]
  return np.arange(t)[None, :] < batch[f"{m}_len"][:, None]


def _rng(seed: int, index: int, position: int):
  return np.random.default_rng(np.random.SeedSequence([seed, index, int(position)]))


def apply(batch: dict, condition: str, index: int, seed: int, std: dict) -> dict:
  """A copy of the host `batch` under `condition` (the module docstring); `index` is the
  condition's place in the list (its draws differ from the other conditions'), `std` the
  split's feature_std."""
  kind, arg = parse(condition)
  out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in batch.items()}
  if kind == "remove" and arg == "text":
    n = out["text_mask"].sum(1)
    last = out["text_ids"][np.arange(len(n)), np.maximum(n - 1, 0)]
    first = out["text_ids"][:, 0].copy()
    out["text_ids"][:] = 0
    out["text_mask"][:] = 0
    out["text_type"][:] = 0
    out["text_ids"][:, 0], out["text_mask"][:, 0] = first, 1
    two = n >= 2
    out["text_ids"][two, 1], out["text_mask"][two, 1] = last[two], 1
  elif kind == "remove":
    out[arg][:] = 0.0
    out[f"{arg}_len"][:] = 1
  elif kind in ("noise", "drop"):
    for row, position in enumerate(batch["position"]):
      rng = _rng(seed, index, position)
      for m in _FRAMES:
        length = int(batch[f"{m}_len"][row])
        if kind == "noise":
          eps = rng.standard_normal((length, out[m].shape[2])).astype(np.float32)
          out[m][row, :length] += arg * std[m] * eps
        else:
          keep = np.flatnonzero(rng.random(length) >= arg)
          if not len(keep):
            keep = rng.integers(length, size=1)
          frames = batch[m][row, keep]
          out[m][row] = 0.0
          out[m][row, :len(keep)] = frames
          out[f"{m}_len"][row] = len(keep)
  return out
