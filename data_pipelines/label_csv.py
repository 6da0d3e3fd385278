"""MMSA's `label.csv`: one row per segment, `video_id,clip_id,text,label,mode`.

Other releases add `annotation` (Positive/Neutral/Negative) and the unimodal labels
`label_T`, `label_A`, `label_V` (CH-SIMS): accepted, reported, not read. A segment's id is
`<video_id>_<clip_id>`, the SDK's segment name: clip k of a video is row k-1 of the video's
label sequence. `mode` is train | valid | test (`dev` is read as valid).
"""

import collections
import csv
import dataclasses
import pathlib

from data_pipelines import checks

REQUIRED = ("video_id", "clip_id", "text", "label", "mode")
OPTIONAL = ("annotation", "label_T", "label_A", "label_V")
MODES = {"train": "train", "valid": "valid", "dev": "valid", "test": "test"}


@dataclasses.dataclass(frozen=True)
class Segment:
  video: str
  clip: int  # 1-based: row clip-1 of the video's sequences.
  text: str
  label: float
  split: str  # train | valid | test, from `mode`.
  line: int  # Line in the file (the header is line 1), for messages.

  @property
  def id(self) -> str:
    return f"{self.video}_{self.clip}"


def _field(row: dict, key: str, path, line: int) -> str:
  value = row.get(key)
  if value is None:
    raise checks.fail(f"{path}, line {line}", f"a value in column '{key}'",
                      "a short row")
  return value


def _segment(row: dict, path, line: int, label_range) -> Segment:
  at = f"{path}, line {line}"
  video = _field(row, "video_id", path, line).strip()
  clip_text = _field(row, "clip_id", path, line).strip()
  try:
    clip = int(clip_text)
  except ValueError:
    raise checks.fail(f"{at}, column 'clip_id'", "an integer", repr(clip_text)) from None
  seg = f"segment '{video}_{clip}'"
  if not video or clip < 1:
    raise checks.fail(f"{at} ({seg})", "a video_id and a clip_id >= 1",
                      f"video_id {video!r}, clip_id {clip}")
  label_text = _field(row, "label", path, line)
  try:
    label = float(label_text)
  except ValueError:
    raise checks.fail(f"{at} ({seg}), column 'label'", "a number", repr(label_text)) from None
  lo, hi = label_range
  if not lo - 1e-6 <= label <= hi + 1e-6:  # Also refuses NaN.
    raise checks.fail(f"{at} ({seg}), column 'label'", f"a label in [{lo:g}, {hi:g}]",
                      f"{label_text}")
  mode = _field(row, "mode", path, line).strip()
  if mode not in MODES:
    raise checks.fail(f"{at} ({seg}), column 'mode'", f"one of {sorted(MODES)}", repr(mode))
  return Segment(video, clip, _field(row, "text", path, line), label, MODES[mode], line)


def read(path, label_range=(-3.0, 3.0)) -> tuple[list[Segment], list[str]]:
  """(segments in file order, the columns present that are not read), validated whole:
  missing columns, unparsable or out-of-range labels, unknown modes and duplicated segments
  are refused in one line naming the file, line and segment."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  try:
    with open(path, newline="", encoding="utf-8") as f:
      reader = csv.DictReader(f)
      columns = list(reader.fieldnames or [])
      missing = [c for c in REQUIRED if c not in columns]
      if missing:
        raise checks.fail(str(path), f"MMSA label.csv columns {list(REQUIRED)}",
                          f"header {columns} (missing {missing})")
      segments = [_segment(row, path, i + 2, label_range) for i, row in enumerate(reader)]
  except UnicodeDecodeError as e:
    raise checks.DataError(f"{path}: not UTF-8 text, so not a label.csv ({e})") from e
  except csv.Error as e:
    raise checks.DataError(f"{path}: not a CSV file ({e})") from e
  if not segments:
    raise checks.DataError(f"{path}: no segments (a header and no rows)")
  first = {}
  for s in segments:
    if s.id in first:
      raise checks.fail(f"{path}, line {s.line}", "each segment once",
                        f"segment '{s.id}' again (first on line {first[s.id]})")
    first[s.id] = s.line
  return segments, [c for c in columns if c not in REQUIRED]


def split_counts(segments: list[Segment]) -> dict[str, int]:
  return dict(collections.Counter(s.split for s in segments))
