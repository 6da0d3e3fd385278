"""Validation shared by the readers: every failure names the file, split, key, expected, found."""

import hashlib
import pathlib
import pickle

import numpy as np

from data_pipelines import safe_pickle


class DataError(ValueError):
  """A data file does not match its format or the config."""


def where(path, split: str | None = None, key: str | None = None) -> str:
  parts = [str(path)]
  if split is not None:
    parts.append(f"split '{split}'")
  if key is not None:
    parts.append(f"key '{key}'")
  return ", ".join(parts)


def fail(at: str, expected, found) -> DataError:
  return DataError(f"{at}: expected {expected}, found {found}")


def sha256(path) -> str:
  """The SHA-256 of a file, read in 4 MiB chunks."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()


def load_pickle(path) -> object:
  """Unpickles a data file through safe_pickle: only the globals a feature file needs (numpy
  arrays and dtypes, containers, strings, numbers) are admitted, so it cannot run code."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  try:
    with open(path, "rb") as f:
      return safe_pickle.load(f)
  except safe_pickle.RefusedGlobal as e:
    raise DataError(f"{path}: refused: the pickle asks for the global '{e.qualified}', which "
                    f"no data file needs (admitted: {safe_pickle.WHAT_IS_ADMITTED}); a pickle "
                    "naming other globals can run code when loaded, so it was not loaded") from e
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
          ImportError, IndexError, KeyError, MemoryError) as e:
    raise DataError(f"{path}: cannot unpickle it ({type(e).__name__}: {e}); the file is "
                    f"truncated, corrupt or not a pickle ({path.stat().st_size} bytes)") from e


def require_keys(mapping, keys, at: str) -> None:
  if not isinstance(mapping, dict):
    raise fail(at, "a dict", type(mapping).__name__)
  missing = [k for k in keys if k not in mapping]
  if missing:
    raise fail(at, f"keys {list(keys)}", f"keys {sorted(map(str, mapping))} "
               f"(missing {missing})")


def array(value, at: str, ndim: int, dtype=np.float32) -> np.ndarray:
  try:
    arr = np.asarray(value, dtype=dtype)
  except (ValueError, TypeError) as e:
    raise fail(at, f"a numeric array ({np.dtype(dtype).name})", f"{type(value).__name__} "
               f"that does not convert ({e})") from e
  if arr.ndim != ndim:
    raise fail(at, f"{ndim} dimensions", f"shape {arr.shape}")
  return arr


def check_dim(arr: np.ndarray, axis: int, want: int | None, at: str, what: str) -> None:
  if want is not None and arr.shape[axis] != want:
    raise fail(at, f"{what} {want} (axis {axis} of the array)",
               f"{arr.shape[axis]} (shape {arr.shape})")


def check_count(arr: np.ndarray, n: int, at: str) -> None:
  if arr.shape[0] != n:
    raise fail(at, f"{n} examples (as in the split's other keys)", f"{arr.shape[0]}")


def non_empty(n: int, at: str) -> None:
  if n == 0:
    raise DataError(f"{at}: the split has no examples; every split needs at least one")


def magnitude(arr: np.ndarray, limit: float, at: str) -> None:
  """Refuses finite values so large that training overflows float32 (squares and sums of
  them in the losses), before any work."""
  if arr.size and limit:
    peak = float(np.max(np.abs(arr)))
    if peak > limit:
      index = np.unravel_index(int(np.argmax(np.abs(arr))), arr.shape)
      raise fail(at, f"feature values within +-{limit:g} (data.max_abs_feature)",
                 f"{arr[index]:g} at index {tuple(int(i) for i in index)}; rescale the "
                 "features (or raise the limit if they are meant to be that large)")


def zero_non_finite(arr: np.ndarray) -> tuple[np.ndarray, int]:
  """Replaces NaN and +-inf (MMSA audio has -inf) by 0; returns the count replaced."""
  bad = ~np.isfinite(arr)
  count = int(bad.sum())
  if count:
    arr = np.where(bad, 0.0, arr).astype(arr.dtype)
  return arr, count


def lengths(value, frames: np.ndarray, at: str) -> np.ndarray:
  """Valid frame counts, given or derived from zero back-padding; always in [1, T]."""
  t = frames.shape[1]
  if value is None:
    nonzero_NxT = np.any(frames != 0, axis=2)
    last = np.where(nonzero_NxT.any(1), t - np.argmax(nonzero_NxT[:, ::-1], axis=1), 1)
    return last.astype(np.int32)
  arr = array(value, at, 1, np.float64).reshape(-1)
  check_count(arr, frames.shape[0], at)
  if np.any(arr != np.round(arr)):
    raise fail(at, "integer lengths", f"non-integers such as {arr[arr != np.round(arr)][0]}")
  bad = np.flatnonzero((arr < 1) | (arr > t))
  if bad.size:
    raise fail(at, f"lengths in [1, {t}]", f"{arr[bad[0]]:g} at index {bad[0]} "
               f"({bad.size} out of range)")
  return arr.astype(np.int32)


def labels(value, n: int, lo: float, hi: float, at: str) -> np.ndarray:
  try:
    arr = np.asarray(value, dtype=np.float64)
  except (ValueError, TypeError) as e:  # Words ("pos"), or ragged lists.
    sample = np.asarray(value, dtype=object).reshape(-1)[:1]
    raise fail(at, "numeric labels", f"values that are not numbers, such as "
               f"{sample[0]!r} ({type(e).__name__})" if sample.size else "no values") from e
  if arr.size != n or (arr.ndim > 1 and set(arr.shape[1:]) != {1}):
    raise fail(at, f"{n} scalar labels, shape ({n},) or ({n}, 1)", f"shape {arr.shape}")
  arr = arr.reshape(-1)
  if not np.all(np.isfinite(arr)):
    raise fail(at, "finite labels", f"{int((~np.isfinite(arr)).sum())} non-finite")
  bad = np.flatnonzero((arr < lo - 1e-6) | (arr > hi + 1e-6))
  if bad.size:
    raise fail(at, f"labels in [{lo:g}, {hi:g}]", f"{arr[bad[0]]:g} at index {bad[0]} "
               f"({bad.size} out of range)")
  return arr.astype(np.float32)


def unique_ids(value, n: int, at: str) -> np.ndarray:
  ids = np.asarray([x.decode() if isinstance(x, bytes) else str(x)
                    for x in np.asarray(value).reshape(-1)], dtype=object)
  if ids.size != n:
    raise fail(at, f"{n} ids", f"{ids.size}")
  uniq, counts = np.unique(ids.astype(str), return_counts=True)
  if np.any(counts > 1):
    raise fail(at, "unique ids", f"{int((counts > 1).sum())} repeated, e.g. "
               f"{uniq[counts > 1][0]!r}")
  return ids
