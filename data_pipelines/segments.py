"""A label.csv's segments joined with CMU-SDK `.csd` features into canonical splits.

- Text: label.csv's transcripts, tokenised with the configured BERT's tokenizer.
- Segment intervals: row clip-1 of the video in the label sequence (`label_csd`), whose
  labels must then agree with label.csv's; without one, row clip-1 of the first feature
  sequence, which is right for utterance-level files only (one row per segment), so a file
  with more rows than the video has segments is refused as frame-level.
- Audio / vision: the rows of its `.csd` inside the segment's interval (one for
  utterance-level features, many for COVAREP or FACET), cut to the configured length, zero
  back-padded, with their count as length. A modality without a file is one zero frame
  (length 1): the text-only datasets.
- Splits: label.csv's `mode`, or the SDK's published standard folds (`folds/<name>.json`).
A segment absent from a feature file (or, with the standard folds, from every fold) is
refused with a count and an example, or dropped and counted (`missing`).
"""

import collections
import dataclasses
import json
import pathlib

from absl import logging
import numpy as np

from data_pipelines import checks
from data_pipelines import csd
from data_pipelines import label_csv
from data_pipelines import text

FORMAT = "label_csv"  # data.format of this reader.
SPLITS = ("train", "valid", "test")
FOLDS_DIR = pathlib.Path(__file__).parent / "folds"
DEFAULT_TEXT_LEN = 50


@dataclasses.dataclass(frozen=True)
class Sources:
  """The files joined with a label.csv (full paths; None = not used)."""
  audio: pathlib.Path | None = None
  vision: pathlib.Path | None = None
  labels: pathlib.Path | None = None  # The label .csd: segment intervals and labels.
  split: str = "file"  # file (label.csv's mode) | standard (the SDK's folds of `folds`).
  folds: str = "mosi"  # mosi | mosei: which published folds.
  missing: str = "refuse"  # refuse | drop.


def standard_folds(name: str) -> dict[str, str]:
  """{video id: split} of the SDK's published folds for `name` (mosi | mosei)."""
  path = FOLDS_DIR / f"{name}.json"
  if not path.is_file():
    raise checks.DataError(f"no standard folds for {name!r} (data.metric_dataset); known: "
                           f"{sorted(p.stem for p in FOLDS_DIR.glob('*.json'))}")
  folds = json.loads(path.read_text())
  return {video: split for split in SPLITS for video in folds[split]}


class _Missing:
  """Segments absent from a source, per source, with the first reason of each."""

  def __init__(self):
    self.by_source = collections.defaultdict(list)

  def add(self, source: str, segment_id: str, why: str) -> None:
    self.by_source[source].append((segment_id, why))

  def ids(self) -> set[str]:
    return {s for found in self.by_source.values() for s, _ in found}

  def settle(self, label_path, n: int, policy: str) -> None:
    for source, found in self.by_source.items():
      seg, why = found[0]
      line = (f"{source}: {len(found)} of the {n} segments of {label_path} are absent "
              f"(first: segment '{seg}', {why})")
      if policy != "drop":
        raise checks.DataError(f"{line}; set data.missing_segments=drop to train without "
                               "them")
      logging.warning("%s; dropped (data.missing_segments=drop)", line)


def _assign_splits(segments, sources: Sources, missing: _Missing, label_path):
  if sources.split == "file":
    return {s.id: s.split for s in segments}
  if sources.split != "standard":
    raise checks.fail(str(label_path), "data.split in {file, standard}", repr(sources.split))
  folds = standard_folds(sources.folds)
  for s in segments:
    if s.video not in folds:
      missing.add(f"the {sources.folds} standard folds", s.id, f"video '{s.video}' is in "
                  "no fold")
  return {s.id: folds.get(s.video) for s in segments}


def _rows_by_video(seq: csd.Sequence, segments):
  """{video: (features, intervals)} for the videos of `segments` that the sequence has."""
  return {v: seq.rows(v) for v in dict.fromkeys(s.video for s in segments) if seq.has(v)}


def _intervals(segments, sources: Sources, missing: _Missing, label_path):
  """({segment id: (start, end)}, {video: the intervals of its segments}) from the label
  .csd (labels checked) or the first feature file (utterance level)."""
  path = sources.labels or sources.audio or sources.vision
  if path is None:
    return {}, {}
  last_clip = collections.defaultdict(int)
  for s in segments:
    last_clip[s.video] = max(last_clip[s.video], s.clip)
  out = {}
  with csd.open_sequence(path) as seq:
    rows = _rows_by_video(seq, segments)
    for s in segments:
      if s.video not in rows:
        missing.add(str(path), s.id, f"video '{s.video}' is not in the file")
        continue
      features, intervals = rows[s.video]
      if sources.labels is None and len(intervals) > last_clip[s.video]:
        raise checks.fail(checks.where(path, key=seq.key(s.video)), f"one row per segment "
                          f"(at most {last_clip[s.video]} for this video in "
                          f"{label_path}) for an utterance-level file", f"{len(intervals)} rows: "
                          "a frame-level sequence; give its segments' intervals with "
                          "data.label_csd (the label .csd)")
      if s.clip > len(intervals):
        missing.add(str(path), s.id, f"video '{s.video}' has {len(intervals)} rows")
        continue
      if sources.labels is not None:
        _check_label(features[s.clip - 1], s, seq, label_path)
      out[s.id] = tuple(intervals[s.clip - 1])
  return out, {v: intervals for v, (_, intervals) in rows.items()}


def _check_label(row, seg, seq: csd.Sequence, label_path) -> None:
  value = float(np.asarray(row).reshape(-1)[0])
  if not abs(value - seg.label) <= 1e-3 * max(1.0, abs(value)):
    raise checks.fail(f"{label_path}, line {seg.line} (segment '{seg.id}')",
                      f"label {value:g} as in {seq.path}, key '{seq.key(seg.video)}' row "
                      f"{seg.clip - 1}", f"{seg.label:g}")


def _pick(intervals, seg, spans, segment_rows):
  """The rows of a segment: its own row where the file has one row per segment (the same
  intervals as the segments': MOSI's segments nest and overlap, so "inside" would also take
  a neighbour's row), else the frames inside its interval."""
  if (segment_rows is not None and len(intervals) == len(segment_rows) and
      np.allclose(intervals, segment_rows, atol=csd.TOLERANCE_S)):
    return np.array([seg.clip - 1])
  return csd.inside(intervals, *spans[seg.id])


def _frames(path, segments, spans, by_video, t_want, d_want, missing: _Missing):
  """({segment id: its rows}, T, d, non-finite count) of one modality's .csd."""
  per_segment = {}
  first_bad = None
  bad = 0
  with csd.open_sequence(path) as seq:
    rows = _rows_by_video(seq, segments)
    d = d_want or (next(iter(rows.values()))[0].shape[1] if rows else 1)
    for s in segments:
      if s.id not in spans:
        continue
      if s.video not in rows:
        missing.add(str(path), s.id, f"video '{s.video}' is not in the file")
        continue
      features, intervals = rows[s.video]
      checks.check_dim(features, 1, d, checks.where(path, key=seq.key(s.video) + "/features"),
                       "feature dim")
      picked = features[_pick(intervals, s, spans, by_video.get(s.video))]
      if not len(picked):
        missing.add(str(path), s.id, "no rows inside its interval [%.3f, %.3f] s" % spans[s.id])
        continue
      n_bad = int((~np.isfinite(picked)).sum())
      if n_bad and first_bad is None:
        first_bad = (seq.key(s.video), s.id)
      bad += n_bad
      per_segment[s.id] = picked
  t = t_want or max((len(v) for v in per_segment.values()), default=1)
  if bad:
    logging.warning("%s: %d non-finite feature values (first in key '%s', segment '%s') "
                    "replaced by 0", path, bad, *first_bad)
  return per_segment, t, d, bad


def _pad(per_segment, ids, t: int, d: int):
  out = np.zeros((len(ids), t, d), np.float32)
  lengths = np.ones(len(ids), np.int32)
  for i, seg in enumerate(ids):
    rows = per_segment[seg][:t]
    out[i, :len(rows)] = np.where(np.isfinite(rows), rows, 0.0)
    lengths[i] = len(rows)
  return out, lengths


def read_labelled(label_path, spec, sources: Sources, tokenizer):
  """({split: canonical arrays}, {split: stats}) of a label.csv (and its .csd files); `spec`
  a readers.ReadSpec (None dims are taken from the files)."""
  label_path = pathlib.Path(label_path)
  segments, unused = label_csv.read(label_path, (spec.label_min, spec.label_max))
  missing = _Missing()
  split_of = _assign_splits(segments, sources, missing, label_path)
  spans, by_video = _intervals(segments, sources, missing, label_path)
  dims = spec.dims
  modal = {}
  for m, path, t, d in (("audio", sources.audio, dims.audio_len, dims.audio_dim),
                        ("vision", sources.vision, dims.vision_len, dims.vision_dim)):
    if path is not None:
      modal[m] = _frames(path, segments, spans, by_video, t, d, missing)
  missing.settle(label_path, len(segments), sources.missing)
  gone = missing.ids()
  kept = [s for s in segments if s.id not in gone]
  splits, stats = {}, {}
  for name in SPLITS:
    members = [s for s in kept if split_of[s.id] == name]
    checks.non_empty(len(members), checks.where(label_path, name))
    splits[name] = _canonical(members, modal, dims, tokenizer, spec, label_path, name)
    stats[name] = {"n": len(members), "text_source": "label.csv text",
                   "non_finite": {m: modal[m][3] if m in modal else 0
                                  for m in ("audio", "vision")},
                   "unused_keys": unused,
                   "dropped": sum(split_of[s] == name for s in gone)}
  return splits, stats


def _canonical(members, modal, dims, tokenizer, spec, label_path, name):
  """One split's canonical arrays."""
  at = checks.where(label_path, name)
  if tokenizer is None:
    raise checks.DataError(f"{at}: label.csv holds transcripts; tokenising them needs a "
                           "tokenizer (set bert.path)")
  ids = [s.id for s in members]
  out = text.tokenize(tokenizer, [s.text for s in members], dims.text_len or DEFAULT_TEXT_LEN)
  if spec.vocab_size is not None and out["text_ids"].max() >= spec.vocab_size:
    raise checks.fail(at, f"token ids < vocabulary size {spec.vocab_size}",
                      f"id {out['text_ids'].max()}")
  for m in ("audio", "vision"):
    if m in modal:
      per_segment, t, d, _ = modal[m]
      out[m], out[f"{m}_len"] = _pad(per_segment, ids, t, d)
      checks.magnitude(out[m], spec.max_abs_feature, f"{at}, {m}")
    else:  # No file: the modality is absent, one zero frame.
      d = getattr(dims, f"{m}_dim") or 1
      out[m] = np.zeros((len(ids), getattr(dims, f"{m}_len") or 1, d), np.float32)
      out[f"{m}_len"] = np.ones(len(ids), np.int32)
  out["label"] = np.asarray([s.label for s in members], np.float32)
  out["id"] = np.asarray(ids, object)
  return out
