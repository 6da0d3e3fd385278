"""Our files in the public formats are complete for the public loaders: each written file
against the keys, dtypes and shapes its public loader reads (docs/data.md lists them),
read the way that loader reads them. MMSA 2.2.1's MMDataLoader for an unaligned MOSI-style
file (models with and without BERT), the MIRD code's load_pkl, the MAG-BERT / MIB
convert_to_features."""

import pickle

import numpy as np
import pytest

from data_pipelines import synthetic

_TINY = dict(n_train=6, n_valid=3, n_test=3, n_unlabeled=4, text_len=8, audio_len=6,
             vision_len=5, vocab_size=300)


def _write(tmp_path, fmt):
  spec = synthetic.SyntheticSpec(**_TINY)
  synthetic.write(spec, tmp_path, fmt)
  name = {"mmsa": "unaligned_50.pkl", "mird": "mird.pkl", "mag": "mosi.pkl"}[fmt]
  with open(tmp_path / name, "rb") as f:
    return pickle.load(f), spec


def _n(spec, mode):
  return {"train": spec.n_train, "valid": spec.n_valid, "dev": spec.n_valid,
          "test": spec.n_test}[mode]


@pytest.mark.parametrize("use_bert", [False, True])
def test_mmsa_file_has_every_key_mmsas_loader_reads(tmp_path, use_bert):
  data, spec = _write(tmp_path, "mmsa")
  for mode in ("train", "valid", "test"):
    split, n = data[mode], _n(spec, mode)
    # As MMDataset.__init_mosi reads them (need_data_aligned False: the unaligned file).
    text = split["text_bert" if use_bert else "text"].astype(np.float32)
    audio, vision = split["audio"].astype(np.float32), split["vision"].astype(np.float32)
    labels = np.array(split["regression_labels"]).astype(np.float32)
    raw_text, ids = split["raw_text"], split["id"]
    audio_lengths, vision_lengths = split["audio_lengths"], split["vision_lengths"]
    assert text.shape == ((n, 3, spec.text_len) if use_bert else
                          (n, spec.text_len, synthetic.TEXT_FEATURE_DIM))
    assert audio.shape == (n, spec.audio_len, spec.audio_dim)
    assert vision.shape == (n, spec.vision_len, spec.vision_dim)
    assert labels.shape == (n,) and len(raw_text) == n and len(ids) == n
    assert all(isinstance(t, str) for t in raw_text)
    for lengths, t in ((audio_lengths, spec.audio_len), (vision_lengths, spec.vision_len)):
      assert len(lengths) == n and all(1 <= int(x) <= t for x in lengths)
    audio[audio == -np.inf] = 0  # What the loader then does; the rest must be finite.
    assert np.isfinite(audio).all() and np.isfinite(vision).all() and np.isfinite(text).all()
  if not use_bert:  # Per-token features: zero exactly on padding, one vector per token id.
    split = data["train"]
    ids, mask = split["text_bert"][:, 0].astype(int), split["text_bert"][:, 1]
    assert not split["text"][mask == 0].any() and split["text"][mask == 1].any(1).all()
    rows = split["text"][mask == 1]
    same = ids[mask == 1] == ids[mask == 1][0]
    np.testing.assert_array_equal(rows[same], np.broadcast_to(rows[0], rows[same].shape))


def test_mird_file_has_every_key_the_mird_loader_reads(tmp_path):
  data, spec = _write(tmp_path, "mird")
  for mode in ("train", "valid", "test"):
    n = _n(spec, mode)
    # As load_pkl reads them, then get_dataset turns them into tensors.
    raw_text = list(data[mode]["raw_text"])
    audio, video, label = data[mode]["audio"], data[mode]["video"], data[mode]["labels"]
    assert len(raw_text) == n and all(isinstance(t, str) for t in raw_text)
    assert np.asarray(audio, np.float32).shape == (n, spec.audio_len, spec.audio_dim)
    assert np.asarray(video, np.float32).shape == (n, spec.vision_len, spec.vision_dim)
    assert np.array([[label]], np.float32).transpose(0, 2, 1).shape == (1, n, 1)


def test_mag_file_has_every_field_convert_to_features_reads(tmp_path):
  data, spec = _write(tmp_path, "mag")
  assert set(data) >= {"train", "dev", "test"}
  for mode in ("train", "dev", "test"):
    assert len(data[mode]) == _n(spec, mode)
    for example in data[mode]:
      (words, visual, acoustic), label_id, segment = example
      assert all(isinstance(w, str) for w in words) and isinstance(segment, str)
      assert np.asarray(visual).shape == (len(words), spec.vision_dim)
      assert np.asarray(acoustic).shape == (len(words), spec.audio_dim)
      assert np.asarray(label_id).shape == (1, 1) and np.isfinite(float(label_id[0][0]))
