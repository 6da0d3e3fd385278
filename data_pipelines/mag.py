"""The MAG-BERT / MIB word-aligned pickle (`mosi.pkl`, `mosei.pkl`) into canonical splits.

Layout: {"train" | "dev" | "test": [((words, visual, acoustic), label, segment), ...]} with
`words` n strings, `visual` [n, d_v] and `acoustic` [n, d_a] word-level feature rows, a
scalar (or [1]) label and a segment id. As the MAG-BERT and MIB code do: each word is
WordPiece-tokenised and its feature rows are repeated for each of its pieces; the pieces
are cut to text_len - 2; [CLS] and [SEP] are added with all-zero feature rows; everything
is zero-padded to text_len. So audio and vision have text_len steps, aligned to the tokens,
with length = number of real tokens. "dev" becomes the canonical "valid".
"""

import numpy as np

from data_pipelines import checks

SPLITS = {"train": "train", "dev": "valid", "test": "test"}  # File split -> canonical.
DEFAULT_TEXT_LEN = 50  # MAG-BERT's and MIB's max_seq_length.


def _example(ex, i: int, at: str):
  """((words, visual, acoustic), label, segment) -> its parts, validated."""
  try:
    (words, visual, acoustic), label, segment = ex
  except (TypeError, ValueError) as e:
    raise checks.fail(f"{at}, example {i}", "((words, visual, acoustic), label, segment)",
                      f"{type(ex).__name__} ({e})") from e
  where = f"{at}, example {i} ({segment!r})"
  if isinstance(words, str) or not all(isinstance(w, str) for w in words):
    raise checks.fail(f"{where}, words", "a list of str", type(words).__name__)
  visual = checks.array(visual, f"{where}, visual", 2)
  acoustic = checks.array(acoustic, f"{where}, acoustic", 2)
  if not len(words) == len(visual) == len(acoustic):
    raise checks.fail(where, "as many visual and acoustic rows as words",
                      f"{len(words)} words, {len(visual)} visual rows, "
                      f"{len(acoustic)} acoustic rows")
  try:
    label = np.asarray(label, np.float64)
  except (TypeError, ValueError) as e:
    raise checks.fail(f"{where}, label", "a number", f"{label!r} ({type(e).__name__})") from e
  if label.size != 1:
    raise checks.fail(f"{where}, label", "one value (shape (), (1,) or (1, 1))",
                      f"shape {label.shape}")
  return list(words), visual, acoustic, float(label.reshape(())), segment


def _dims(examples, want: int | None, index: int, name: str, at: str) -> int:
  """The feature dim of the split (the config's, or the first example's); all must agree."""
  found = {int(np.shape(ex[0][index])[1]) for ex in examples if np.ndim(ex[0][index]) == 2}
  dim = want if want is not None else min(found, default=0)
  if found - {dim}:
    raise checks.fail(f"{at}, {name}", f"feature dim {dim} in every example",
                      f"dims {sorted(found)}")
  return dim


def canonical_split(examples, path, split: str, dims, label_range, tokenizer,
                    vocab_size: int | None = None, max_abs_feature: float = 0.0):
  """One split's list -> (canonical arrays, stats); `dims` an example.Dims (None fields are
  taken from the file)."""
  at = checks.where(path, split)
  if not isinstance(examples, list) or not examples:
    raise checks.fail(at, "a non-empty list of examples", type(examples).__name__)
  if tokenizer is None:
    raise checks.DataError(f"{at}: the MAG-BERT layout holds words; tokenising them needs a "
                           "WordPiece tokenizer (set bert.path to a directory with tokenizer "
                           "files)")
  t = dims.text_len or DEFAULT_TEXT_LEN
  for key, want in (("audio_len", dims.audio_len), ("vision_len", dims.vision_len)):
    if want is not None and want != t:
      raise checks.fail(str(path), f"data.{key} = data.text_len = {t} (MAG-BERT features "
                        "are aligned to the tokens)", f"data.{key}={want}")
  d_v = _dims(examples, dims.vision_dim, 1, "visual", at)
  d_a = _dims(examples, dims.audio_dim, 2, "acoustic", at)
  n = len(examples)
  out = {"text_ids": np.zeros((n, t), np.int32), "text_mask": np.zeros((n, t), np.int32),
         "text_type": np.zeros((n, t), np.int32), "audio": np.zeros((n, t, d_a), np.float32),
         "vision": np.zeros((n, t, d_v), np.float32)}
  labels, ids = [], []
  cls, sep = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  for i, ex in enumerate(examples):
    words, visual, acoustic, label, segment = _example(ex, i, at)
    pieces, rows = [], []
    for j, word in enumerate(words):
      p = tokenizer.tokenize(word)
      pieces += p
      rows += [j] * len(p)
    pieces, rows = pieces[:t - 2], np.asarray(rows[:t - 2], np.int64)
    k = len(pieces) + 2
    out["text_ids"][i, :k] = [cls, *tokenizer.convert_tokens_to_ids(pieces), sep]
    out["text_mask"][i, :k] = 1
    out["audio"][i, 1:k - 1] = acoustic[rows]
    out["vision"][i, 1:k - 1] = visual[rows]
    labels.append(label)
    ids.append(segment)
  out["audio"], bad_a = checks.zero_non_finite(out["audio"])
  out["vision"], bad_v = checks.zero_non_finite(out["vision"])
  checks.magnitude(out["audio"], max_abs_feature, f"{at}, acoustic")
  checks.magnitude(out["vision"], max_abs_feature, f"{at}, visual")
  if vocab_size is not None and out["text_ids"].max() >= vocab_size:
    raise checks.fail(at, f"token ids < vocabulary size {vocab_size}",
                      f"id {out['text_ids'].max()}")
  out["audio_len"] = out["text_mask"].sum(1).astype(np.int32)
  out["vision_len"] = out["audio_len"].copy()
  out["label"] = checks.labels(labels, n, *label_range, f"{at}, labels")
  out["id"] = checks.unique_ids(ids, n, f"{at}, segment ids")
  stats = {"n": n, "text_source": "words (WordPiece, features repeated per piece)",
           "non_finite": {"audio": bad_a, "vision": bad_v}, "unused_keys": []}
  return out, stats
