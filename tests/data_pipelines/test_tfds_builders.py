"""TFDS builders: built from small generated files, read back through tfds.data_source."""

import importlib
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import demo
from configs import mib_mosi
from data_pipelines import checks
from data_pipelines import input_pipeline
from data_pipelines import readers
from data_pipelines import synthetic
from data_pipelines import tfds_builders


def _data_source(name, data_dir, manual_dir):
  return tfds.data_source(
      name, data_dir=str(data_dir), builder_kwargs={"file_format": "array_record"},
      download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
          manual_dir=str(manual_dir))})


@pytest.mark.parametrize("name, file, dims", [
    ("cmu_mosi/unaligned_50", "unaligned_50.pkl", dict(audio_len=375, audio_dim=5,
                                                       vision_len=500, vision_dim=20)),
    ("cmu_mosei/unaligned_50", "unaligned_50.pkl", dict(audio_len=500, audio_dim=74,
                                                        vision_len=500, vision_dim=35)),
    ("cmu_mosei/aligned_50", "aligned_50.pkl", dict(audio_len=50, audio_dim=74,
                                                    vision_len=50, vision_dim=35)),
])
def test_public_builders_from_manual_files(tmp_path, name, file, dims):
  spec = synthetic.SyntheticSpec(n_train=7, n_valid=3, n_test=4, n_unlabeled=1, text_len=50,
                                 neg_inf_frac=0.01, **dims)
  manual = tmp_path / "manual"
  written = synthetic.write(spec, manual)
  (manual / "unaligned_50.pkl").rename(manual / file)
  sources = _data_source(name, tmp_path / "tfds", manual)
  assert {k: len(v) for k, v in sources.items()} == {"train": 7, "valid": 3, "test": 4}
  raw, _, _ = readers.read_labelled(manual / file, readers.ReadSpec())
  for split, source in sources.items():
    by_id = {input_pipeline.decode(source[i])["id"]: i for i in range(len(source))}
    assert set(by_id) == set(raw[split]["id"])
    for j in (0, len(raw[split]["id"]) - 1):
      ex = input_pipeline.decode(source[by_id[raw[split]["id"][j]]])
      for key in ("text_ids", "audio", "audio_len", "vision", "vision_len", "label"):
        np.testing.assert_array_equal(ex[key], raw[split][key][j], err_msg=key)
  assert written["labelled"].endswith("unaligned_50.pkl")


def test_manual_builder_without_files_says_where_to_put_them(tmp_path):
  (tmp_path / "manual").mkdir()
  with pytest.raises(AssertionError, match="MOSI/Processed/unaligned_50.pkl"):
    _data_source("cmu_mosi/unaligned_50", tmp_path / "tfds", tmp_path / "manual")


def test_synthetic_builder_generates_its_data(tmp_path):
  sources = _data_source("synthetic_mosi/small", tmp_path / "tfds", tmp_path / "raw")
  assert {k: len(v) for k, v in sources.items()} == {"train": 32, "valid": 12, "test": 12,
                                                      "unlabeled": 16}
  assert (tmp_path / "raw" / "factors.npz").exists()
  ex = input_pipeline.decode(sources["unlabeled"][0])
  assert ex["id"].startswith("synun") and ex["label"] == 0


def test_prepare_from_config_and_rebuild_on_change(tmp_path):
  config = demo.get_config("smoke")
  sources = tfds_builders.prepare(config, tmp_path)
  n = config.data.synthetic
  assert {k: len(v) for k, v in sources.items()} == {
      "train": n.n_train, "valid": n.n_valid, "test": n.n_test, "unlabeled": n.n_unlabeled}
  ex = input_pipeline.decode(sources["train"][0])
  assert ex["audio"].shape == (config.data.audio_len, config.data.audio_dim)
  assert tfds_builders.prepare(config, tmp_path)["train"][0]["id"] == sources["train"][0]["id"]
  config.data.synthetic.n_train = 56  # A different dataset must not reuse the old build.
  assert len(tfds_builders.prepare(config, tmp_path)["train"]) == 56


def test_unknown_dataset_name(tmp_path):
  config = demo.get_config("smoke")
  config.data.name = "iemocap"
  with pytest.raises(ValueError, match="data.name='iemocap'"):
    tfds_builders.prepare(config, tmp_path)


@pytest.mark.parametrize("name", ["mosi_paper", "mosei_paper"])
def test_paper_config_reads_the_mird_layout_and_its_pool(tmp_path, tokenizer_dir, name):
  """The paper's setting on generated files in the MIRD layout: 50 tokens re-tokenised from
  raw_text, 400 x 33 audio, 55 x 709 vision, and the flat unlabelled pool."""
  config = importlib.import_module(f"configs.{name}").get_config()
  d = config.data
  spec = synthetic.SyntheticSpec(n_train=6, n_valid=3, n_test=3, n_unlabeled=5,
                                 text_len=d.text_len, audio_len=d.audio_len,
                                 audio_dim=d.audio_dim, vision_len=d.vision_len,
                                 vision_dim=d.vision_dim, vocab_size=512)
  manual = tmp_path / "manual"
  written = synthetic.write(spec, manual, "mird")
  pathlib.Path(written["labelled"]).rename(manual / d.file)
  pathlib.Path(written["unlabeled"]).rename(manual / d.unlabeled_file)
  config.data.manual_dir = str(manual)
  config.bert.path = str(tokenizer_dir)  # The synthetic vocabulary's WordPiece tokenizer.
  config.bert.pretrained = False
  config.bert.random.vocab_size = 512
  sources = tfds_builders.prepare(config, tmp_path / "work")
  assert {k: len(v) for k, v in sources.items()} == {"train": 6, "valid": 3, "test": 3,
                                                      "unlabeled": 5}
  ex = input_pipeline.decode(sources["unlabeled"][0])
  assert ex["audio"].shape == (400, 33) and ex["vision"].shape == (55, 709)
  assert ex["text_ids"].shape == (50,) and ex["text_mask"].sum() > 2


def test_mib_config_reads_the_mag_layout(tmp_path, tokenizer_dir):
  """configs/mib_mosi.py's data on a generated MAG-BERT file: words re-tokenised, every
  modality on the text's steps (74-d acoustic, 47-d visual rows), dev read as valid."""
  config = mib_mosi.get_config("smoke")
  d = config.data
  spec = synthetic.SyntheticSpec(n_train=6, n_valid=3, n_test=4, n_unlabeled=2,
                                 text_len=d.text_len, audio_len=30, audio_dim=d.audio_dim,
                                 vision_len=30, vision_dim=d.vision_dim, vocab_size=512)
  assert synthetic.write(spec, tmp_path / "manual", "mag")["labelled"].endswith(d.file)
  config.data.manual_dir = str(tmp_path / "manual")
  config.bert.path = str(tokenizer_dir)  # The synthetic vocabulary's WordPiece tokenizer.
  sources = tfds_builders.prepare(config, tmp_path / "work")
  assert {k: len(v) for k, v in sources.items()} == {"train": 6, "valid": 3, "test": 4}
  ex = input_pipeline.decode(sources["valid"][0])
  assert ex["audio"].shape == (d.text_len, 74) and ex["vision"].shape == (d.text_len, 47)
  assert ex["audio_len"] == ex["vision_len"] == ex["text_mask"].sum() > 2


def test_a_synthetic_config_leaves_the_users_data_dir_alone(tmp_path):
  """data.manual_dir naming a folder with the user's own unaligned_50.pkl: the run stops,
  naming it, and the folder is as it was."""
  user = tmp_path / "user"
  user.mkdir()
  (user / "unaligned_50.pkl").write_bytes(b"the user's MOSI file")
  config = demo.get_config("smoke")
  config.data.manual_dir = str(user)
  with pytest.raises(checks.DataError, match=r"user/unaligned_50.pkl: exists and was not "
                     "written by the synthetic generator"):
    tfds_builders.prepare(config, tmp_path / "work")
  assert [p.name for p in user.iterdir()] == ["unaligned_50.pkl"]
  assert (user / "unaligned_50.pkl").read_bytes() == b"the user's MOSI file"
