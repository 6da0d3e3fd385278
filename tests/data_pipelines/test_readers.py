"""Readers: exact values from the public layouts, and a named error for every bad input."""

import copy
import pickle

import numpy as np
import pytest

from conftest import SMALL
from data_pipelines import checks
from data_pipelines import example
from data_pipelines import mag
from data_pipelines import readers
from data_pipelines import synthetic
from data_pipelines import text

DIMS = example.Dims(SMALL["text_len"], SMALL["audio_len"], SMALL["audio_dim"],
                    SMALL["vision_len"], SMALL["vision_dim"])
SPEC = readers.ReadSpec(DIMS, vocab_size=SMALL["vocab_size"])


@pytest.fixture(name="raw")
def _raw(synthetic_dir):
  with open(synthetic_dir / "unaligned_50.pkl", "rb") as f:
    return pickle.load(f)


def _dump(obj, path):
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=4)
  return path


def test_mmsa_values_round_trip(synthetic_dir, raw):
  splits, stats, fmt = readers.read_labelled(synthetic_dir / "unaligned_50.pkl", SPEC)
  assert fmt == "mmsa"
  for name in readers.SPLITS:
    got, want = splits[name], raw[name]
    assert stats[name]["n"] == len(want["id"]) and stats[name]["text_source"] == "text_bert"
    np.testing.assert_array_equal(got["text_ids"], want["text_bert"][:, 0])
    np.testing.assert_array_equal(got["text_mask"], want["text_bert"][:, 1])
    np.testing.assert_array_equal(got["audio_len"], want["audio_lengths"])
    np.testing.assert_array_equal(got["label"], want["regression_labels"])
    np.testing.assert_array_equal(got["id"], want["id"])
    finite = np.isfinite(want["audio"])
    np.testing.assert_array_equal(got["audio"][finite], want["audio"][finite])
    assert np.all(got["audio"][~finite] == 0)
    assert stats[name]["non_finite"]["audio"] == (~finite).sum() > 0
    for key, (shape, dtype) in DIMS.shapes().items():
      assert got[key].shape[1:] == shape and got[key].dtype == dtype, key


def test_config_dim_mismatch_names_everything(synthetic_dir):
  spec = readers.ReadSpec(example.Dims(16, 24, 74, 20, 20))  # MOSEI's 74-d audio.
  with pytest.raises(checks.DataError) as e:
    readers.read_labelled(synthetic_dir / "unaligned_50.pkl", spec)
  msg = str(e.value)
  for part in ("unaligned_50.pkl", "split 'train'", "key 'audio'", "feature dim 74", "found 5"):
    assert part in msg, msg


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["valid"].pop("vision"), r"split 'valid'.*missing \['vision'\]"),
    (lambda d: d["train"]["audio_lengths"].__setitem__(2, 0),
     r"split 'train', key 'audio_lengths': expected lengths in \[1, 24\], found 0 at index 2"),
    (lambda d: d["test"]["vision_lengths"].__setitem__(0, 21), r"key 'vision_lengths'.*found 21"),
    (lambda d: d["train"]["regression_labels"].__setitem__(1, 3.5),
     r"key 'regression_labels': expected labels in \[-3, 3\], found 3.5 at index 1"),
    (lambda d: d["valid"]["id"].__setitem__(1, d["valid"]["id"][0]),
     r"split 'valid', key 'id': expected unique ids, found 1 repeated"),
    (lambda d: d["train"].__setitem__("vision", d["train"]["vision"][:-1]),
     r"key 'vision': expected 40 examples"),
    (lambda d: d["test"].__setitem__("text_bert", d["test"]["text_bert"][:, :2]),
     r"key 'text_bert': expected shape \(N, 3, T\)"),
    (lambda d: d.pop("test"), r"not a labelled MMSA, MIRD or MAG-BERT file"),
    (lambda d: d["train"].__setitem__("regression_labels", np.array(
        ["pos", "neg"] * 20)), r"split 'train', key 'regression_labels': expected numeric "
     r"labels, found values that are not numbers, such as 'pos'"),
    (lambda d: d["test"].update({k: v[:0] for k, v in d["test"].items()}),
     r"split 'test': the split has no examples"),
    (lambda d: d["train"].update({k: v[:0] for k, v in d["train"].items()}),
     r"split 'train': the split has no examples"),
    (lambda d: d["valid"]["audio"].__setitem__((2, 0, 1), 3e38),
     r"split 'valid', key 'audio': expected feature values within \+-1e\+06 "
     r"\(data.max_abs_feature\), found 3e\+38 at index \(2, 0, 1\); rescale"),
])
def test_bad_content_is_named(tmp_path, raw, mutate, match):
  data = copy.deepcopy(raw)
  mutate(data)
  with pytest.raises(checks.DataError, match=match):
    readers.read_labelled(_dump(data, tmp_path / "bad.pkl"), SPEC)


def test_keys_no_reader_uses_are_reported(tmp_path, raw, caplog):
  data = copy.deepcopy(raw)
  for split in data.values():
    split["depth"] = np.zeros_like(split["vision"])
  _, stats, _ = readers.read_labelled(_dump(data, tmp_path / "x.pkl"), SPEC)
  assert stats["train"]["unused_keys"] == ["depth"]
  assert "ignoring keys that are not part of the mmsa layout: depth" in caplog.text
  _, stats, _ = readers.read_labelled(_dump(raw, tmp_path / "y.pkl"), SPEC)
  assert stats["train"]["unused_keys"] == []  # Every key the generator writes is known.


def test_truncated_and_non_pickle_files(tmp_path, synthetic_dir):
  blob = (synthetic_dir / "unaligned_50.pkl").read_bytes()
  (tmp_path / "cut.pkl").write_bytes(blob[: len(blob) // 3])
  with pytest.raises(checks.DataError, match=r"cut.pkl: cannot unpickle it.*truncated"):
    readers.read_labelled(tmp_path / "cut.pkl", SPEC)
  (tmp_path / "notes.pkl").write_text("hello")
  with pytest.raises(checks.DataError, match=r"notes.pkl: cannot unpickle it"):
    readers.read_labelled(tmp_path / "notes.pkl", SPEC)
  with pytest.raises(FileNotFoundError, match="absent.pkl: no such file"):
    readers.read_labelled(tmp_path / "absent.pkl", SPEC)


def test_token_ids_beyond_the_vocabulary(synthetic_dir):
  with pytest.raises(checks.DataError, match=r"token ids < vocabulary size 100"):
    readers.read_labelled(synthetic_dir / "unaligned_50.pkl",
                          readers.ReadSpec(DIMS, vocab_size=100))


def test_mird_layout_tokenises_and_derives_lengths(tmp_path, tokenizer_dir, small_spec):
  files = synthetic.write(small_spec, tmp_path, "mird")
  with open(tmp_path / "mird.pkl", "rb") as f:
    raw = pickle.load(f)
  tok = text.load_tokenizer(str(tokenizer_dir))
  splits, stats, fmt = readers.read_labelled(files["labelled"], SPEC, tok, "mird")
  assert fmt == "mird" and stats["train"]["text_source"] == "raw_text"
  mmsa, _, _ = synthetic.generate(small_spec)  # The same examples in the MMSA layout.
  train = splits["train"]
  np.testing.assert_array_equal(train["text_ids"], mmsa["train"]["text_bert"][:, 0])
  np.testing.assert_array_equal(train["vision_len"], mmsa["train"]["vision_lengths"])
  np.testing.assert_array_equal(train["label"], raw["train"]["labels"])
  assert train["id"][3] == example.positional_id("train", 3)
  pool, pool_stats = readers.read_pool(files["unlabeled"], SPEC, tok)
  assert pool_stats["n"] == small_spec.n_unlabeled and np.all(pool["label"] == 0)
  with pytest.raises(checks.DataError, match="no tokenizer is configured"):
    readers.read_labelled(files["labelled"], SPEC, None)
  with pytest.raises(checks.DataError, match=r"expected data.format='mmsa', found a 'mird'"):
    readers.read_labelled(files["labelled"], SPEC, tok, "mmsa")


def test_text_bert_of_another_vocabulary_is_retokenised(tmp_path, raw, tokenizer_dir):
  data = copy.deepcopy(raw)
  for split in data.values():  # As if text_bert came from a different tokenizer.
    tb = split["text_bert"]
    tb[:, 0] = np.where(tb[:, 1] > 0, (tb[:, 0] * 7) % 500, 0)
  tok = text.load_tokenizer(str(tokenizer_dir))
  splits, stats, _ = readers.read_labelled(_dump(data, tmp_path / "x.pkl"), SPEC, tok)
  assert stats["train"]["text_source"] == "raw_text"
  np.testing.assert_array_equal(splits["train"]["text_ids"], raw["train"]["text_bert"][:, 0])
  splits, stats, _ = readers.read_labelled(_dump(raw, tmp_path / "y.pkl"), SPEC, tok)
  assert stats["train"]["text_source"] == "text_bert"


def test_lengths_absent_are_derived_from_back_padding(tmp_path, raw):
  data = copy.deepcopy(raw)
  for split in data.values():
    del split["audio_lengths"], split["vision_lengths"]
  splits, _, _ = readers.read_labelled(_dump(data, tmp_path / "a.pkl"), SPEC)
  # -inf values were zeroed: the derived length still ends at the last non-zero frame.
  np.testing.assert_array_equal(splits["valid"]["vision_len"], raw["valid"]["vision_lengths"])


MAG_DIMS = example.Dims(SMALL["text_len"], SMALL["text_len"], SMALL["audio_dim"],
                        SMALL["text_len"], SMALL["vision_dim"])


@pytest.fixture(name="mag_file", scope="module")
def _mag_file(small_spec, tmp_path_factory):
  """The synthetic benchmark written in the MAG-BERT layout."""
  return synthetic.write(small_spec, tmp_path_factory.mktemp("mag"), "mag")["labelled"]


def test_mag_layout_round_trips_the_synthetic_benchmark(mag_file, raw, tokenizer_dir):
  """Tokens, word rows at their token positions (zero rows at [CLS]/[SEP]), lengths,
  labels and ids: what the generator meant, read back through the WordPiece tokenizer."""
  tok = text.load_tokenizer(str(tokenizer_dir))
  splits, stats, fmt = readers.read_labelled(mag_file, readers.ReadSpec(MAG_DIMS), tok, "mag")
  assert fmt == "mag" and set(splits) == set(readers.SPLITS)
  with open(mag_file, "rb") as f:
    assert set(pickle.load(f)) == {"train", "dev", "test"}
  for name in readers.SPLITS:
    got, want = splits[name], raw[name]
    assert stats[name]["n"] == len(want["id"])
    # Every synthetic word is one WordPiece, so the ids are the MMSA file's.
    np.testing.assert_array_equal(got["text_ids"], want["text_bert"][:, 0])
    np.testing.assert_array_equal(got["text_mask"], want["text_bert"][:, 1])
    np.testing.assert_array_equal(got["audio_len"], got["text_mask"].sum(1))
    np.testing.assert_array_equal(got["vision_len"], got["text_mask"].sum(1))
    np.testing.assert_array_equal(got["label"], want["regression_labels"])
    assert list(got["id"]) == [str(i) for i in want["id"]]
    for i in (0, len(want["id"]) - 1):
      k = int(got["text_mask"][i].sum())
      for m, d in (("audio", SMALL["audio_dim"]), ("vision", SMALL["vision_dim"])):
        rows = synthetic.word_rows(want[m][i], want[f"{m}_lengths"][i], k - 2)
        rows = np.where(np.isfinite(rows), rows, 0.0)
        np.testing.assert_allclose(got[m][i, 1:k - 1], rows, rtol=1e-6)
        assert not got[m][i, 0].any() and not got[m][i, k - 1:].any()  # [CLS], [SEP], pad.
        assert got[m].shape[1:] == (SMALL["text_len"], d)


@pytest.fixture(name="piece_tokenizer")
def _piece_tokenizer(tmp_path):
  import transformers  # pylint: disable=g-import-not-at-top
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##believ", "##able", "good",
           "movie"]
  (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
  return transformers.BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"),
                                       do_lower_case=True)


def _mag(examples):
  return {"train": examples, "dev": examples, "test": examples}


def test_mag_word_rows_repeat_per_wordpiece_and_truncate(tmp_path, piece_tokenizer):
  acoustic = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
  visual = 10 * acoustic[:, :1]
  ex = ((["Unbelievable", "good", "movie"], visual, acoustic), np.array([[1.4]]), "v$_$0")
  path = _dump(_mag([ex]), tmp_path / "mosi.pkl")
  dims = example.Dims(6, 6, 2, 6, 1)  # Room for 4 of the 5 pieces.
  splits, _, _ = readers.read_labelled(path, readers.ReadSpec(dims), piece_tokenizer)
  got = splits["valid"]
  ids = piece_tokenizer.convert_tokens_to_ids(["[CLS]", "un", "##believ", "##able", "good",
                                               "[SEP]"])
  np.testing.assert_array_equal(got["text_ids"][0], ids)
  np.testing.assert_array_equal(got["text_mask"][0], [1] * 6)
  np.testing.assert_array_equal(got["audio"][0], [[0, 0], [1, 2], [1, 2], [1, 2], [3, 4],
                                                  [0, 0]])
  np.testing.assert_array_equal(got["vision"][0, :, 0], [0, 10, 10, 10, 30, 0])
  assert got["audio_len"][0] == 6 and got["label"][0] == np.float32(1.4)
  assert got["id"][0] == "v$_$0"


@pytest.mark.parametrize("change, message", [
    (lambda w, v, a: (w, v[:2], a), "example 0 ('v$_$0'): expected as many visual and "
                                    "acoustic rows as words, found 3 words, 2 visual rows"),
    (lambda w, v, a: ("good movie", v, a), "words: expected a list of str"),
    (lambda w, v, a: (w, v, np.zeros((3, 5))), "acoustic: expected feature dim 2 in every"),
    (lambda w, v, a: (w, v, a * 1e7), "acoustic: expected feature values within +-1e+06"),
])
def test_bad_mag_examples_are_named(tmp_path, piece_tokenizer, change, message):
  acoustic = np.ones((3, 2), np.float32)
  words, visual, acoustic = change(["good", "movie", "un"], np.ones((3, 1)), acoustic)
  path = _dump(_mag([((words, visual, acoustic), 0.5, "v$_$0")]), tmp_path / "mosi.pkl")
  dims = example.Dims(8, 8, 2, 8, 1)
  with pytest.raises(checks.DataError) as e:
    readers.read_labelled(path, readers.ReadSpec(dims), piece_tokenizer)
  assert message in str(e.value) and "split 'train'" in str(e.value) and str(path) in str(e.value)


def test_mag_labels_as_words_and_empty_splits_are_named(tmp_path, piece_tokenizer):
  ex = ((["good"], np.ones((1, 1)), np.ones((1, 2))), "positive", "v$_$0")
  path = _dump(_mag([ex]), tmp_path / "mosi.pkl")
  dims = example.Dims(8, 8, 2, 8, 1)
  with pytest.raises(checks.DataError, match=r"example 0 \('v\$_\$0'\), label: expected a "
                     r"number, found 'positive'"):
    readers.read_labelled(path, readers.ReadSpec(dims), piece_tokenizer)
  data = _mag([((["good"], np.ones((1, 1)), np.ones((1, 2))), 0.5, "v$_$0")])
  data["test"] = []
  path = _dump(data, tmp_path / "empty.pkl")
  with pytest.raises(checks.DataError, match=r"empty.pkl, split 'test': expected a non-empty "
                     "list of examples"):
    readers.read_labelled(path, readers.ReadSpec(dims), piece_tokenizer)


def test_mag_needs_a_tokenizer_and_aligned_lengths(tmp_path, piece_tokenizer):
  path = _dump(_mag([((["good"], np.ones((1, 1)), np.ones((1, 2))), 0.5, "v$_$0")]),
               tmp_path / "mosi.pkl")
  with pytest.raises(checks.DataError, match="needs a WordPiece tokenizer"):
    readers.read_labelled(path, readers.ReadSpec(example.Dims(8, 8, 2, 8, 1)))
  with pytest.raises(checks.DataError, match="data.audio_len = data.text_len = 8"):
    readers.read_labelled(path, readers.ReadSpec(example.Dims(8, 20, 2, 8, 1)),
                          piece_tokenizer)


def test_mag_rows_follow_their_word_pieces_between_zero_cls_and_sep_rows(synthetic_dir,
                                                                          tokenizer_dir):
  import transformers  # pylint: disable=g-import-not-at-top
  tok = transformers.BertTokenizerFast.from_pretrained(str(tokenizer_dir))
  words = [w for w in (synthetic_dir / "vocab.txt").read_text().split()
           if not w.startswith("[") and len(tok.tokenize(w)) == 1][:3]
  acoustic = np.arange(6.0).reshape(3, 2)
  visual = -np.arange(9.0).reshape(3, 3)
  ex = ((words, visual, acoustic), 1.5, "seg0")
  out, stats = mag.canonical_split([ex], "mosi.pkl", "train", example.Dims(text_len=8), (-3, 3),
                                   tok)
  assert out["audio"].shape == (1, 8, 2) and out["vision"].shape == (1, 8, 3)
  np.testing.assert_array_equal(out["audio"][0, 1:4], acoustic)
  np.testing.assert_array_equal(out["vision"][0, 1:4], visual)
  assert not out["audio"][0, [0, 4]].any() and out["audio_len"][0] == 5
  assert list(out["id"]) == ["seg0"] and out["label"][0] == 1.5 and stats["n"] == 1
  with pytest.raises(checks.DataError, match=(
      r"mosi.pkl, split 'train', example 1: expected \(\(words, visual, acoustic\), label, "
      r"segment\)")):
    mag.canonical_split([ex, ("words only",)], "mosi.pkl", "train", example.Dims(text_len=8),
                        (-3, 3), tok)
