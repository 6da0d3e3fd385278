"""CMU-MultimodalSDK computational sequences (`.csd`): HDF5 files of per-video sequences.

Layout (the SDK's, for features and labels alike):
  /<root name>/data/<video id>/features   [n, d]  one row per frame, or per segment
  /<root name>/data/<video id>/intervals  [n, 2]  each row's (start, end) in seconds
  /<root name>/metadata/...                        strings (description, citation, ...)
Frame-level sequences (COVAREP, FACET, OpenFace) have many rows per segment; utterance-level
ones (and the opinion labels) one. Rows are read a video at a time, so a multi-GB MOSEI
sequence is never held whole.
"""

import dataclasses
import pathlib

import numpy as np

from data_pipelines import checks

TOLERANCE_S = 1e-3  # Interval ends are stored in float32: a row "inside" may overhang this.


@dataclasses.dataclass
class Sequence:
  """An open computational sequence; `close()` (or `with`) releases the file."""
  path: pathlib.Path
  root: str  # The sequence's root group name (e.g. "Opinion Segment Labels").
  _file: object
  _data: object

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self) -> None:
    self._file.close()

  def videos(self) -> list[str]:
    return list(self._data.keys())

  def has(self, video: str) -> bool:
    return video in self._data

  def key(self, video: str) -> str:
    """The HDF5 path of a video's rows, for messages."""
    return f"{self.root}/data/{video}"

  def rows(self, video: str) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, d] float32, intervals [n, 2] float64) of a video, validated."""
    group = self._data[video]
    at = checks.where(self.path, key=self.key(video))
    for name in ("features", "intervals"):
      if name not in group:
        raise checks.fail(at, "datasets 'features' and 'intervals'",
                          f"members {sorted(group.keys())} (no '{name}')")
    features = checks.array(group["features"][()], f"{at}/features", 2)
    intervals = checks.array(group["intervals"][()], f"{at}/intervals", 2, np.float64)
    if intervals.shape[1] != 2 or len(intervals) != len(features):
      raise checks.fail(f"{at}/intervals", f"shape ({len(features)}, 2), one (start, end) per "
                        "feature row", f"shape {intervals.shape}")
    return features, intervals

  def metadata(self) -> dict[str, str]:
    """The sequence's metadata strings (empty when the file has none)."""
    meta = self._file[self.root].get("metadata")
    if meta is None or not hasattr(meta, "keys"):
      return {}
    out = {}
    for k in meta.keys():
      value = np.asarray(meta[k][()]).reshape(-1)
      out[k] = " ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                        for v in value).strip('"')
    return out


def open_sequence(path) -> Sequence:
  """Opens a .csd, refusing in one line a file that is not HDF5 or lacks the SDK's groups."""
  import h5py  # pylint: disable=g-import-not-at-top  # Only readers of .csd files need it.
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise checks.DataError(f"{path}: not an HDF5 file, so not a CMU-SDK computational "
                           f"sequence (.csd) ({path.stat().st_size} bytes; h5py: {e})") from e
  groups = [k for k in f.keys() if hasattr(f[k], "keys")]
  if len(groups) != 1:
    f.close()
    raise checks.fail(str(path), "one root group holding 'data' and 'metadata' (the CMU-SDK "
                      "computational sequence layout)", f"top-level groups {groups}")
  root = groups[0]
  data = f[root].get("data")
  if data is None or not hasattr(data, "keys"):
    members = sorted(f[root].keys())
    f.close()
    raise checks.fail(checks.where(path, key=f"{root}/data"), "a group of videos",
                      f"members of '{root}': {members}")
  return Sequence(path, root, f, data)


def inside(intervals_Nx2: np.ndarray, start: float, end: float) -> np.ndarray:
  """Indices of the rows whose interval lies inside [start, end] (to float32 rounding)."""
  return np.flatnonzero((intervals_Nx2[:, 0] >= start - TOLERANCE_S) &
                        (intervals_Nx2[:, 1] <= end + TOLERANCE_S))


def write(path, root: str, videos: dict, metadata: dict | None = None) -> None:
  """Writes a computational sequence in the SDK's layout: `videos` {video id: (features
  [n, d], intervals [n, 2])}, `metadata` {name: string}. For tests and for converting
  features into the format; refuses to replace an existing file."""
  import h5py  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if path.exists():
    raise FileExistsError(f"{path}: exists; not replaced")
  with h5py.File(path, "w") as f:
    data = f.create_group(root).create_group("data")
    for video, (features, intervals) in videos.items():
      group = data.create_group(video)
      group["features"] = np.asarray(features, np.float32)
      group["intervals"] = np.asarray(intervals, np.float32)
    meta = f[root].create_group("metadata")
    for key, value in {"root name": root, **(metadata or {})}.items():
      meta.create_dataset(key, data=np.array([value.encode()], dtype=object),
                          dtype=h5py.string_dtype())
