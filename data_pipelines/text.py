"""Token ids for the transcripts: the file's `text_bert`, or `raw_text` re-tokenised.

MMSA files carry `text_bert` from bert-base-uncased. We use it only when it is what the
configured tokenizer would produce (checked on the first examples); otherwise `raw_text` is
tokenised with the configured tokenizer, as the MIRD code does for every file.
"""

from absl import logging
import numpy as np

from data_pipelines import checks
from data_pipelines import encoders

_N_COMPARE = 32  # Transcripts re-tokenised to decide whether text_bert matches.

def load_tokenizer(path: str):
  """A transformers fast tokenizer from a local directory, an installed encoder's name
  (data_pipelines/encoders.py), or a hub id (with network)."""
  if not path:
    return None
  import transformers  # pylint: disable=g-import-not-at-top  # Slow import; only if needed.
  try:
    return transformers.AutoTokenizer.from_pretrained(encoders.resolve(path), use_fast=True)
  except encoders.EncoderNotInstalled as e:
    raise checks.DataError(str(e)) from None
  except (OSError, ValueError) as e:
    raise checks.DataError(f"bert.path={path!r}: cannot load a tokenizer from it ({e})") from e


def tokenize(tokenizer, texts, text_len: int) -> dict[str, np.ndarray]:
  enc = tokenizer([str(t) for t in texts], padding="max_length", truncation=True,
                  max_length=text_len, return_token_type_ids=True, return_attention_mask=True)
  return {"text_ids": np.asarray(enc["input_ids"], np.int32),
          "text_mask": np.asarray(enc["attention_mask"], np.int32),
          "text_type": np.asarray(enc["token_type_ids"], np.int32)}


def from_text_bert(value, n: int, text_len: int | None, at: str) -> dict[str, np.ndarray]:
  arr = checks.array(value, at, 3, np.float64)
  checks.check_count(arr, n, at)
  if arr.shape[1] != 3:
    raise checks.fail(at, "shape (N, 3, T) = [ids, mask, type ids]", f"shape {arr.shape}")
  checks.check_dim(arr, 2, text_len, at, "text length")
  if np.any(arr != np.round(arr)) or arr.min() < 0:
    raise checks.fail(at, "non-negative integer ids, mask and type ids", "other values")
  ids, mask, types = (arr[:, i].astype(np.int32) for i in range(3))
  if not np.isin(mask, (0, 1)).all():
    raise checks.fail(at, "attention mask in {0, 1}", f"values {np.unique(mask)[:5]}")
  if np.any(mask.sum(1) < 1):
    raise checks.fail(at, "at least one real token per example",
                      f"{int((mask.sum(1) < 1).sum())} empty transcripts")
  return {"text_ids": ids, "text_mask": mask, "text_type": types}


def _matches(tokenizer, raw_text, text_bert, text_len) -> bool:
  k = min(_N_COMPARE, len(raw_text))
  ours = tokenize(tokenizer, raw_text[:k], text_len)
  return bool(np.array_equal(ours["text_ids"] * ours["text_mask"],
                             text_bert["text_ids"][:k] * text_bert["text_mask"][:k]))


def choose(split: dict, n: int, tokenizer, text_len: int | None, at: str, vocab_size: int | None):
  """Returns (text fields, how they were obtained) for one split."""
  has_raw = "raw_text" in split
  if "text_bert" in split:
    tb = from_text_bert(split["text_bert"], n, text_len, f"{at}, key 'text_bert'")
    if tokenizer is None or not has_raw or _matches(tokenizer, list(split["raw_text"]), tb,
                                                    tb["text_ids"].shape[1]):
      _check_vocab(tb["text_ids"], vocab_size, f"{at}, key 'text_bert'")
      return tb, "text_bert"
    logging.info("%s: text_bert differs from the configured tokenizer; re-tokenising "
                 "raw_text", at)
  if not has_raw:
    raise checks.fail(at, "key 'text_bert' or 'raw_text'", f"keys {sorted(split)}")
  if tokenizer is None:
    raise checks.DataError(f"{at}: only raw_text is usable here and no tokenizer is "
                           "configured (set bert.path to a directory with tokenizer files)")
  if text_len is None:
    raise checks.DataError(f"{at}: raw_text needs a configured text length (data.text_len)")
  raw = checks.array(split["raw_text"], f"{at}, key 'raw_text'", 1, object)
  checks.check_count(raw, n, f"{at}, key 'raw_text'")
  out = tokenize(tokenizer, raw, text_len)
  _check_vocab(out["text_ids"], vocab_size, f"{at}, key 'raw_text'")
  return out, "raw_text"


def _check_vocab(ids: np.ndarray, vocab_size: int | None, at: str) -> None:
  if vocab_size is not None and ids.max() >= vocab_size:
    raise checks.fail(at, f"token ids < vocabulary size {vocab_size}", f"id {ids.max()}")
