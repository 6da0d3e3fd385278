r"""Inspects a feature file: format, splits, dims, lengths, labels, non-finite values, SHA-256.

  python -m data_pipelines.tools.verify PATH [--tokenizer DIR] [--vocab-size N]
  python -m data_pipelines.tools.verify SEQUENCE.csd
  python -m data_pipelines.tools.verify label.csv [--tokenizer DIR] [--audio-csd A.csd]
      [--vision-csd V.csd] [--label-csd L.csd] [--split file|standard] [--folds mosi|mosei]

PATH: a pickle (MMSA, MIRD, MAG-BERT), a CMU-SDK computational sequence (.csd, HDF5), or
an MMSA label.csv, alone or (with a tokenizer) joined with .csd files as training reads it.

Exits 1 with one line naming the split and key at fault when the file cannot be trained on:
a bad format or value, an empty split, splits whose padded lengths or feature dims differ,
token ids outside the vocabulary (--vocab-size, or the tokenizer's). Keys that no reader
uses are listed, not read.

PATH is unpickled: pickles run code when loaded, so only pass files you trust.
"""

import argparse
import pathlib
import sys

import numpy as np

from data_pipelines import checks
from data_pipelines import csd
from data_pipelines import example
from data_pipelines import label_csv
from data_pipelines import readers
from data_pipelines import segments
from data_pipelines import text

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# SHA-256 of the public MMSA releases (docs/data.md).
KNOWN_SHA256 = {
    "78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524":
        "MMSA MOSI/Processed/unaligned_50.pkl",
    "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9":
        "MMSA MOSI/Processed/aligned_50.pkl",
    "ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f":
        "MMSA MOSEI/Processed/unaligned_50.pkl",
    "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791":
        "MMSA MOSEI/Processed/aligned_50.pkl",
    "c9e20c13ec0454d98bb9c1e520e490c75146bfa2dfeeea78d84de047dbdd442f":
        "MMSA SIMS/Processed/unaligned_39.pkl",
}


def _summary(v: np.ndarray) -> str:
  """min, median, 90th and 99th percentiles, max: what length buckets are chosen from."""
  p50, p90, p99 = np.percentile(v, [50, 90, 99])
  return f"min {v.min():g}, median {p50:g}, p90 {p90:g}, p99 {p99:g}, max {v.max():g}"


def _describe_split(name, split, stats, labelled) -> list[str]:
  lines = [f"split {name}: {stats['n']} examples"]
  if stats["unused_keys"]:
    lines.append(f"  unused keys (not read): {', '.join(stats['unused_keys'])}")
  tokens = split["text_mask"].sum(1)
  lines.append(f"  text: T={split['text_ids'].shape[1]} (from {stats['text_source']}), "
               f"tokens {_summary(tokens)}")
  for m in ("audio", "vision"):
    _, t, d = split[m].shape
    lines.append(f"  {m}: T={t} d={d}, lengths {_summary(split[f'{m}_len'])}, "
                 f"non-finite values {stats['non_finite'][m]}")
  if labelled:
    y = split["label"]
    classes, counts = np.unique(np.round(np.clip(y, -3, 3)).astype(int), return_counts=True)
    hist = ", ".join(f"{c:+d}: {k}" for c, k in zip(classes, counts))
    lines.append(f"  labels: {_summary(y)}, exactly 0: {int((y == 0).sum())}; "
                 f"rounded histogram {{{hist}}}")
  return lines


def check_consistent(path, splits: dict) -> None:
  """Every split has the first one's padded lengths and feature dims (training needs it)."""
  first = next(iter(splits))
  for name, split in splits.items():
    for key, axes in (("text_ids", "padded length"), ("audio", "(padded length, feature dim)"),
                      ("vision", "(padded length, feature dim)")):
      want, got = splits[first][key].shape[1:], split[key].shape[1:]
      if got != want:
        raise checks.fail(checks.where(path, name, key), f"{axes} {want} as in split "
                          f"'{first}'", f"{got}")


def describe(path, tokenizer=None, label_range=(-3.0, 3.0),
             vocab_size: int | None = None) -> list[str]:
  path = pathlib.Path(path)
  digest = checks.sha256(path)
  lines = [f"file: {path} ({path.stat().st_size} bytes)",
           f"sha256: {digest} ({KNOWN_SHA256.get(digest, 'matches no known public file')})"]
  obj = checks.load_pickle(path)
  fmt = readers.detect_format(obj)
  lines.append(f"format: {fmt}")
  if vocab_size is None and tokenizer is not None:
    vocab_size = len(tokenizer)
  spec = readers.ReadSpec(label_min=label_range[0], label_max=label_range[1],
                          vocab_size=vocab_size)
  if fmt in readers.FORMATS:
    read = readers.labelled_splits(obj, path, spec, tokenizer, fmt)
    check_consistent(path, {name: split for name, (split, _) in read.items()})
    for name, (split, stats) in read.items():
      lines += _describe_split(name, split, stats, True)
  elif fmt == "pool":
    split, stats = readers.canonical_split(obj, path, "unlabeled", spec, tokenizer, False)
    lines += _describe_split("unlabeled (flat pool)", split, stats, False)
  else:
    raise checks.DataError(f"{path}: not a supported feature file (top level: "
                           f"{type(obj).__name__})")
  return lines


def describe_csd(path) -> list[str]:
  """A computational sequence: its metadata, videos, rows, dims, intervals, values."""
  path = pathlib.Path(path)
  with csd.open_sequence(path) as seq:
    meta = seq.metadata()
    lines = [f"file: {path} ({path.stat().st_size} bytes)", "format: CMU-SDK computational "
             f"sequence, root '{seq.root}'",
             f"description: {meta.get('computational sequence description', '(none)')}"]
    counts, dims, bad, peak, span = [], set(), 0, 0.0, [np.inf, -np.inf]
    for video in seq.videos():
      features, intervals = seq.rows(video)
      counts.append(len(features))
      dims.add(features.shape[1])
      finite = np.isfinite(features)
      bad += int((~finite).sum())
      peak = max(peak, float(np.abs(np.where(finite, features, 0)).max(initial=0)))
      span = [min(span[0], intervals[:, 0].min(initial=np.inf)),
              max(span[1], intervals[:, 1].max(initial=-np.inf))]
  if len(dims) > 1:
    raise checks.fail(str(path), "one feature dim in every video", f"dims {sorted(dims)}")
  counts = np.asarray(counts)
  lines += [f"videos: {len(counts)}, rows {counts.sum()} (per video {_summary(counts)})",
            f"feature dim: {dims.pop() if dims else 0}, largest |value| {peak:g}, "
            f"non-finite values {bad}",
            f"intervals: {span[0]:g} s to {span[1]:g} s"]
  return lines


def describe_label_csv(path, tokenizer, label_range, args) -> list[str]:
  """A label.csv: its segments and splits; with a tokenizer, the dataset training reads."""
  segs, unused = label_csv.read(path, label_range)
  videos = {s: len({x.video for x in segs if x.split == s}) for s in readers.SPLITS}
  lines = [f"file: {path}", "format: MMSA label.csv",
           f"segments: {len(segs)} in {len({s.video for s in segs})} videos; mode column: " +
           ", ".join(f"{s} {n} ({videos[s]} videos)"
                     for s, n in label_csv.split_counts(segs).items())]
  if unused:
    lines.append(f"columns not read: {', '.join(unused)}")
  if tokenizer is None:
    return lines + ["(give --tokenizer to tokenise the transcripts and join the .csd files)"]
  near = lambda name: pathlib.Path(path).parent / name if name else None
  sources = segments.Sources(audio=near(args.audio_csd), vision=near(args.vision_csd),
                             labels=near(args.label_csd), split=args.split, folds=args.folds)
  spec = readers.ReadSpec(example.Dims(), *label_range, len(tokenizer))
  splits, stats = segments.read_labelled(path, spec, sources, tokenizer)
  for name in readers.SPLITS:
    lines += _describe_split(name, splits[name], stats[name], True)
  return lines


def _describe_any(args) -> list[str]:
  path = pathlib.Path(args.path)
  tokenizer = text.load_tokenizer(args.tokenizer)
  label_range = tuple(args.label_range)
  if path.is_file() and path.open("rb").read(8) == _HDF5_SIGNATURE:
    return describe_csd(path)
  if path.suffix == ".csd":
    csd.open_sequence(path)  # Says in one line what it is not.
  if path.suffix == ".csv":
    return describe_label_csv(path, tokenizer, label_range, args)
  return describe(path, tokenizer, label_range, args.vocab_size)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("path")
  parser.add_argument("--tokenizer", default="",
                      help="tokenizer dir, for raw_text-only and MAG-BERT (word) files")
  parser.add_argument("--label_range", type=float, nargs=2, default=(-3.0, 3.0))
  parser.add_argument("--vocab-size", "--vocab_size", type=int, default=None,
                      help="token ids must be below it (default: the tokenizer's size)")
  for m in ("audio", "vision", "label"):
    parser.add_argument(f"--{m}-csd", f"--{m}_csd", default="",
                        help=f"label.csv: the {m} .csd beside it to join")
  parser.add_argument("--split", default="file", choices=("file", "standard"),
                      help="label.csv: its mode column, or the SDK's standard folds")
  parser.add_argument("--folds", default="mosi", choices=("mosi", "mosei"))
  args = parser.parse_args(argv)
  try:
    lines = _describe_any(args)
  except (checks.DataError, FileNotFoundError) as e:
    print(f"verify: {e}", file=sys.stderr)
    return 1
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
