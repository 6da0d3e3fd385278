"""Small CMU-MOSI-like files in the public formats, written by the tests: an MMSA label.csv,
the SDK's label computational sequence and utterance- or frame-level feature sequences.

Videos v0..v{n-1}, each with `clips` segments laid end to end (segment k of a video spans
[2k, 2k + 2) s); a segment's label is +-2 by the word "good" or "bad" in its transcript,
and audio feature 0 carries the label too (scaled by 100 and shifted by 300, openSMILE-like
raw values), so a model that reads either learns.
"""

import csv
import pathlib

import numpy as np

from data_pipelines import csd

AUDIO_DIM, VISION_DIM = 3, 2


def segment_table(n_videos: int = 6, clips: int = 4, seed: int = 0):
  """[(video, clip, text, label, mode)] with videos split 4:1:1 by index."""
  rng = np.random.default_rng(seed)
  rows = []
  for v in range(n_videos):
    mode = ("train", "train", "train", "train", "valid", "test")[v % 6]
    for k in range(1, clips + 1):
      good = bool(rng.integers(2))
      label = round((2.0 if good else -2.0) + float(rng.normal(0, 0.3)), 2)
      words = rng.choice(["the", "movie", "plot", "was", "actor"], 3)
      text = " ".join([*words[:2], "good" if good else "bad", words[2]])
      rows.append((f"v{v}", k, text, label, mode))
  return rows


def write_label_csv(path, rows, extra_columns=False) -> pathlib.Path:
  path = pathlib.Path(path)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    header = ["video_id", "clip_id", "text", "label", "mode"]
    w.writerow(header + (["annotation", "label_T"] if extra_columns else []))
    for video, clip, text, label, mode in rows:
      w.writerow([video, clip, text, label, mode] +
                 (["Positive" if label > 0 else "Negative", label] if extra_columns else []))
  return path


def _span(clip: int) -> tuple[float, float]:
  return 2.0 * (clip - 1), 2.0 * clip


def write_labels_csd(path, rows) -> pathlib.Path:
  videos = {}
  for video, clip, _, label, _ in rows:
    feats, spans = videos.setdefault(video, ([], []))
    feats.append([label])
    spans.append(_span(clip))
  csd.write(path, "Opinion Segment Labels", videos)
  return pathlib.Path(path)


def audio_rows(label: float, n: int, rng) -> np.ndarray:
  rows = rng.normal(0, 1, (n, AUDIO_DIM))
  rows[:, 0] = 300 + 100 * label
  return rows


def write_features_csd(path, rows, frames_per_segment: int = 1, modality: str = "audio",
                       seed: int = 1) -> pathlib.Path:
  """One row per segment (utterance level), or `frames_per_segment` frames inside each
  segment's interval (frame level)."""
  rng = np.random.default_rng(seed)
  videos = {}
  for video, clip, _, label, _ in rows:
    feats, spans = videos.setdefault(video, ([], []))
    n = frames_per_segment
    feats.extend(audio_rows(label, n, rng) if modality == "audio" else
                 rng.normal(0, 50, (n, VISION_DIM)))
    start, end = _span(clip)
    edges = np.linspace(start, end, n + 1)
    spans.extend(zip(edges[:-1], edges[1:]))
  csd.write(path, f"test_{modality}", videos)
  return pathlib.Path(path)


def write_all(directory, rows=None, frames_per_segment: int = 1):
  """label.csv, labels.csd, audio.csd and vision.csd in `directory`; returns the rows."""
  directory = pathlib.Path(directory)
  rows = segment_table() if rows is None else rows
  write_label_csv(directory / "label.csv", rows)
  write_labels_csd(directory / "labels.csd", rows)
  write_features_csd(directory / "audio.csd", rows, frames_per_segment, "audio")
  write_features_csd(directory / "vision.csd", rows, frames_per_segment, "vision")
  return rows
