"""The synthetic benchmark: exact MMSA format, deterministic, and the properties the demo needs."""

import json
import pickle

import numpy as np
import pytest

from data_pipelines import readers
from data_pipelines import synthetic
from data_pipelines import text
from mird_jax.evaluation import metrics
from mird_jax.evaluation import probes


def _load(path):
  with open(path, "rb") as f:
    return pickle.load(f)


def test_mmsa_layout(synthetic_dir, small_spec):
  data = _load(synthetic_dir / "unaligned_50.pkl")
  assert set(data) == {"train", "valid", "test"}
  train = data["train"]
  n = small_spec.n_train
  assert {"raw_text", "text_bert", "audio", "vision", "audio_lengths", "vision_lengths", "id",
          "regression_labels", "annotations", "classification_labels"} <= set(train)
  assert train["text_bert"].shape == (n, 3, small_spec.text_len)
  assert train["audio"].shape == (n, small_spec.audio_len, small_spec.audio_dim)
  assert train["vision"].shape == (n, small_spec.vision_len, small_spec.vision_dim)
  ids, mask = train["text_bert"][:, 0], train["text_bert"][:, 1]
  assert np.all(ids[:, 0] == synthetic.CLS) and np.all(ids[mask == 0] == synthetic.PAD)
  last = mask.sum(1).astype(int) - 1
  assert np.all(ids[np.arange(n), last] == synthetic.SEP)
  assert all("$_$" in i for i in train["id"])
  pool = _load(synthetic_dir / "unlabeled.pkl")
  assert "regression_labels" not in pool and len(pool["id"]) == small_spec.n_unlabeled


def test_padding_lengths_and_special_values(synthetic_dir):
  train = _load(synthetic_dir / "unaligned_50.pkl")["train"]
  for m in ("audio", "vision"):
    x, lengths = train[m], np.asarray(train[f"{m}_lengths"])
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    assert np.all(x[~valid] == 0), "back-padding must be exact zeros"
    assert np.all(np.any(x != 0, axis=2)[valid]), "no all-zero frame inside the valid region"
    assert np.all(x[:, 0, 0] != 0)
    assert lengths.min() >= 1 and len(np.unique(lengths)) > 5, "lengths must vary"
  assert np.isneginf(train["audio"]).sum() > 0
  y = train["regression_labels"]
  assert np.all(np.abs(y) <= 3) and np.allclose(y * 5, np.round(y * 5), atol=1e-5)


def test_exact_zero_labels_and_clipped_extremes():
  labelled, _, _ = synthetic.generate(synthetic.SyntheticSpec(
      n_train=2000, n_valid=1, n_test=1, n_unlabeled=1, text_len=8, audio_len=4,
      vision_len=4, vocab_size=512))
  y = labelled["train"]["regression_labels"]
  assert 0.02 < np.mean(y == 0) < 0.08
  assert np.any(y == 3.0) and np.any(y == -3.0)


def test_deterministic_given_seed(small_spec):
  a, pa, fa = synthetic.generate(small_spec)
  b, pb, fb = synthetic.generate(small_spec)
  c, _, _ = synthetic.generate(synthetic.SyntheticSpec(**{**small_spec.__dict__, "seed": 4}))
  for split in a:
    for key in a[split]:
      np.testing.assert_array_equal(np.asarray(a[split][key]), np.asarray(b[split][key]))
  np.testing.assert_array_equal(pa["audio"], pb["audio"])
  np.testing.assert_array_equal(fa["train"]["shared"], fb["train"]["shared"])
  assert not np.array_equal(a["train"]["vision"], c["train"]["vision"])


def test_factors_sidecar_keyed_by_id(synthetic_dir, small_spec):
  f = np.load(synthetic_dir / "factors.npz")
  data = _load(synthetic_dir / "unaligned_50.pkl")
  train_ids = f["id"][f["split"] == "train"]
  np.testing.assert_array_equal(train_ids, data["train"]["id"])
  n_total = small_spec.n_train + small_spec.n_valid + small_spec.n_test + small_spec.n_unlabeled
  assert f["shared"].shape == (n_total,) and f["private"].shape == (n_total, 3)
  # The label is the noisy, quantised clean score: strongly tied to it.
  clean = f["label_clean"][f["split"] == "train"]
  assert np.corrcoef(clean, data["train"]["regression_labels"])[0, 1] > 0.9


def test_text_bert_is_the_tokenisation_of_raw_text(synthetic_dir, tokenizer_dir, small_spec):
  train = _load(synthetic_dir / "unaligned_50.pkl")["train"]
  tok = text.load_tokenizer(str(tokenizer_dir))
  ours = text.tokenize(tok, train["raw_text"], small_spec.text_len)
  np.testing.assert_array_equal(ours["text_ids"], train["text_bert"][:, 0].astype(np.int32))
  np.testing.assert_array_equal(ours["text_mask"], train["text_bert"][:, 1].astype(np.int32))


def test_all_modalities_beat_any_one_with_a_closed_form_probe():
  spec = synthetic.SyntheticSpec(n_train=800, n_valid=200, n_test=400, n_unlabeled=1,
                                 text_len=24, audio_len=40, vision_len=40, vocab_size=1000)
  labelled, _, _ = synthetic.generate(spec)
  splits = {k: readers.canonical_split(v, "synthetic", k, readers.ReadSpec(), None, True)[0]
            for k, v in labelled.items()}
  report = {name: metrics.all_metrics(pred, splits["test"]["label"])
            for name, pred in probes.test_predictions(splits).items()}
  best_single = max(report[m]["Corr"] for m in probes.MODALITIES)
  assert report["all"]["Corr"] > best_single + 0.05, {k: v["Corr"] for k, v in report.items()}
  assert report["all"]["MAE"] < min(report[m]["MAE"] for m in probes.MODALITIES) - 0.05
  for m in probes.MODALITIES:
    assert report[m]["Corr"] > 0.3, f"{m} alone must carry signal"


def test_cli_writes_mird_layout(tmp_path):
  synthetic.main(["--out", str(tmp_path), "--format", "mird", "--n_train", "6", "--n_valid",
                  "3", "--n_test", "3", "--n_unlabeled", "4", "--text_len", "8", "--audio_len",
                  "6", "--vision_len", "5", "--vocab_size", "300"])
  data = _load(tmp_path / "mird.pkl")
  assert set(data["train"]) == {"raw_text", "audio", "video", "labels"}
  assert data["train"]["video"].shape == (6, 5, 20)
  assert set(_load(tmp_path / "unlabeled.pkl")) == {"raw_text", "audio", "video"}


def test_bad_spec_is_named():
  with pytest.raises(ValueError, match="vocab_size 50 too small"):
    synthetic.SyntheticSpec(vocab_size=50)


_TINY = dict(n_train=6, n_valid=3, n_test=3, n_unlabeled=4, text_len=8, audio_len=6,
             vision_len=5, vocab_size=300)


def test_the_generator_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
  """Its own files (listed with their SHA-256 in synthetic_files.json) it regenerates; one
  it was writing when it stopped too; a user's file of the same name, or its own file
  changed since, stops it, naming the file, before anything is written."""
  out = tmp_path / "data"
  out.mkdir()
  (out / "vocab.txt").write_text("the user's own vocabulary\n")
  with pytest.raises(synthetic.checks.DataError, match=r"data/vocab.txt: exists and was not "
                     r"written by the synthetic generator"):
    synthetic.write(synthetic.SyntheticSpec(**_TINY), out)
  assert sorted(p.name for p in out.iterdir()) == ["vocab.txt"]
  assert (out / "vocab.txt").read_text() == "the user's own vocabulary\n"
  with pytest.raises(SystemExit, match=r"^synthetic: .*vocab.txt: exists and was not written"):
    synthetic.main(["--out", str(out), *(f"--{k}={v}" for k, v in _TINY.items())])

  (out / "vocab.txt").unlink()
  synthetic.write(synthetic.SyntheticSpec(**_TINY), out)
  synthetic.write(synthetic.SyntheticSpec(**dict(_TINY, seed=1)), out)  # Its own: replaced.
  pool = (out / "unlabeled.pkl").read_bytes()
  (out / "unlabeled.pkl").write_bytes(pool[:100])  # A kill in the middle of rewriting it...
  manifest = json.loads((out / synthetic.MANIFEST).read_text())
  (out / synthetic.MANIFEST).write_text(json.dumps(dict(manifest, **{"unlabeled.pkl":
                                                                     "being written"})))
  synthetic.write(synthetic.SyntheticSpec(**dict(_TINY, seed=1)), out)  # ...is finished.
  assert (out / "unlabeled.pkl").read_bytes() == pool
  (out / "unaligned_50.pkl").write_bytes(b"edited by the user")
  with pytest.raises(synthetic.checks.DataError, match="unaligned_50.pkl: exists and was not"):
    synthetic.write(synthetic.SyntheticSpec(**_TINY), out)
  assert (out / "unaligned_50.pkl").read_bytes() == b"edited by the user"
