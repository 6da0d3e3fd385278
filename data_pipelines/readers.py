"""Readers for the public feature files (docs/data.md) into canonical splits.

Formats:
- mmsa: MMSA `aligned_50.pkl` / `unaligned_50.pkl` (MOSI, MOSEI) and `unaligned_39.pkl`
  (SIMS): {train, valid, test} -> {text_bert, raw_text, audio, vision, audio_lengths,
  vision_lengths, id, regression_labels, ...}.
- mird: the MIRD code's layout: {train, valid, test} -> {raw_text, audio, video, labels};
  no lengths (derived from the zero back-padding) and no ids (numbered).
- mag: the MAG-BERT / MIB word-aligned pickle: {train, dev, test} -> lists of
  ((words, visual, acoustic), label, segment) (data_pipelines/mag.py).
- pool: a flat unlabelled dict in either key convention (MIRD's EmoVoxCeleb file is
  {raw_text, audio, video}).
All of them are pickles: load only files the user names.
"""

import dataclasses

from absl import logging
import numpy as np

from data_pipelines import checks
from data_pipelines import example
from data_pipelines import mag
from data_pipelines import text

SPLITS = ("train", "valid", "test")
FORMATS = ("mmsa", "mird", "mag")


@dataclasses.dataclass(frozen=True)
class ReadSpec:
  """What the config expects of a file; None fields are taken from the file."""
  dims: example.Dims = example.Dims()
  label_min: float = -3.0
  label_max: float = 3.0
  vocab_size: int | None = None
  max_abs_feature: float = 1e6  # data.max_abs_feature; 0 = not checked.

  @classmethod
  def from_config(cls, config) -> "ReadSpec":
    vocab = None if config.bert.pretrained else config.bert.random.vocab_size
    return cls(example.Dims.from_config(config.data), config.data.label_min,
               config.data.label_max, vocab, config.data.max_abs_feature)


def detect_format(obj) -> str:
  """mmsa | mird | mag (MAG-BERT/MIB lists) | pool | unknown."""
  if not isinstance(obj, dict):
    return "unknown"
  if all(isinstance(obj.get(s), dict) for s in SPLITS):
    first = obj["train"]
    if "vision" in first:
      return "mmsa"
    if "video" in first:
      return "mird"
  if all(isinstance(obj.get(s), list) for s in ("train", "dev", "test")):
    return "mag"
  if "audio" in obj and ("video" in obj or "vision" in obj):
    return "pool"
  return "unknown"


def _frames(raw, key, n, t, d, at, max_abs):
  where = checks.where(at, key=key)
  arr = checks.array(raw[key], where, 3)
  if n is not None:
    checks.check_count(arr, n, where)
  else:
    checks.non_empty(arr.shape[0], at)
  checks.check_dim(arr, 1, t, where, "padded length")
  checks.check_dim(arr, 2, d, where, "feature dim")
  arr, bad = checks.zero_non_finite(arr)
  checks.magnitude(arr, max_abs, where)
  return arr, bad


_KEYS = {"mmsa": ("vision", "regression_labels"), "mird": ("video", "labels")}
# Keys the readers use in either layout, and the MMSA release's other keys (unused here).
_READ = ("audio", "audio_lengths", "vision_lengths", "id", "text_bert", "raw_text")
_MMSA_OTHER = ("text", "annotations", "classification_labels") + tuple(
    f"{k}_{m}" for k in ("regression_labels", "classification_labels") for m in "TAV")


def unused_keys(raw: dict, fmt: str) -> list[str]:
  """Keys of a split (or pool) that no reader of `fmt` knows: reported, not read."""
  known = set(_READ) | set(_KEYS[fmt]) | (set(_MMSA_OTHER) if fmt == "mmsa" else set())
  return sorted(str(k) for k in raw if k not in known)


def canonical_split(raw: dict, path, split: str, spec: ReadSpec, tokenizer, labelled: bool,
                    fmt: str | None = None):
  """One split (or pool) -> (canonical arrays, stats); fmt None takes either key convention."""
  at = checks.where(path, split)
  if fmt is None:
    fmt = "mmsa" if "vision" in raw else "mird"
  vision_key, label_key = _KEYS[fmt]
  checks.require_keys(raw, ["audio", vision_key] + ([label_key] if labelled else []), at)
  dims = spec.dims
  audio, bad_a = _frames(raw, "audio", None, dims.audio_len, dims.audio_dim, at,
                         spec.max_abs_feature)
  n = audio.shape[0]
  vision, bad_v = _frames(raw, vision_key, n, dims.vision_len, dims.vision_dim, at,
                          spec.max_abs_feature)
  out = {
      "audio": audio,
      "audio_len": checks.lengths(raw.get("audio_lengths"), audio,
                                  checks.where(path, split, "audio_lengths")),
      "vision": vision,
      "vision_len": checks.lengths(raw.get("vision_lengths"), vision,
                                   checks.where(path, split, "vision_lengths")),
  }
  fields, source = text.choose(raw, n, tokenizer, dims.text_len, at, spec.vocab_size)
  out.update(fields)
  if labelled:
    out["label"] = checks.labels(raw[label_key], n, spec.label_min, spec.label_max,
                                 checks.where(path, split, label_key))
  else:
    out["label"] = np.zeros(n, np.float32)
  out["id"] = (checks.unique_ids(raw["id"], n, checks.where(path, split, "id")) if "id" in raw
               else np.array([example.positional_id(split, i) for i in range(n)], object))
  stats = {"n": n, "text_source": source, "non_finite": {"audio": bad_a, "vision": bad_v},
           "unused_keys": unused_keys(raw, fmt)}
  if bad_a or bad_v:
    logging.warning("%s: replaced non-finite feature values by 0: audio %d, vision %d", at,
                    bad_a, bad_v)
  if stats["unused_keys"]:
    logging.warning("%s: ignoring keys that are not part of the %s layout: %s", at, fmt,
                    ", ".join(stats["unused_keys"]))
  return out, stats


def labelled_splits(obj, path, spec: ReadSpec, tokenizer, fmt: str):
  """{canonical split: (arrays, stats)} of an unpickled labelled file of format `fmt`."""
  if fmt == "mag":
    return {name: mag.canonical_split(obj[key], path, key, spec.dims,
                                      (spec.label_min, spec.label_max), tokenizer,
                                      spec.vocab_size, spec.max_abs_feature)
            for key, name in mag.SPLITS.items()}
  return {name: canonical_split(obj[name], path, name, spec, tokenizer, True, fmt)
          for name in SPLITS}


def read_labelled(path, spec: ReadSpec, tokenizer=None, fmt: str | None = None):
  """Reads a labelled file (any of FORMATS) -> ({split: canonical}, {split: stats}, format)."""
  obj = checks.load_pickle(path)
  found = detect_format(obj)
  if found not in FORMATS:
    keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
    raise checks.DataError(f"{path}: not a labelled MMSA, MIRD or MAG-BERT file (format "
                           f"detected: {found}; top level: {keys}); expected keys "
                           f"{list(SPLITS)} (MAG-BERT: {list(mag.SPLITS)})")
  if fmt is not None and found != fmt:
    raise checks.fail(str(path), f"data.format={fmt!r}", f"a {found!r} file")
  read = labelled_splits(obj, path, spec, tokenizer, found)
  return ({k: v[0] for k, v in read.items()}, {k: v[1] for k, v in read.items()}, found)


def read_pool(path, spec: ReadSpec, tokenizer=None):
  """Reads a flat unlabelled pool -> (canonical arrays, stats)."""
  obj = checks.load_pickle(path)
  if detect_format(obj) != "pool":
    raise checks.fail(str(path), "a flat unlabelled dict with 'audio' and 'video' or "
                      "'vision'", f"format {detect_format(obj)!r}")
  return canonical_split(obj, path, "unlabeled", spec, tokenizer, False)


def read_any(path, spec: ReadSpec, tokenizer=None) -> dict[str, dict[str, np.ndarray]]:
  """Every split of a labelled file, or {"unlabeled": pool}, whichever the file is."""
  obj = checks.load_pickle(path)
  if detect_format(obj) == "pool":
    return {"unlabeled": canonical_split(obj, path, "unlabeled", spec, tokenizer, False)[0]}
  fmt = detect_format(obj)
  if fmt not in FORMATS:
    raise checks.DataError(f"{path}: not a supported feature file (format detected: {fmt})")
  return {name: arrays for name, (arrays, _) in
          labelled_splits(obj, path, spec, tokenizer, fmt).items()}
