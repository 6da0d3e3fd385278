"""train.restart on a workdir's files (no JAX): what it moves aside, what it keeps, and
that it deletes nothing."""

import json

import pytest

from mird_jax.runs import errors
from mird_jax.runs import restart


def _workdir(tmp_path, steps=(4, 8, 12)):
  w = tmp_path / "run"
  for s in steps:
    (w / "ckpt" / str(s)).mkdir(parents=True)
    (w / "ckpt" / str(s) / "state").write_text(f"step {s}")
  (w / "best" / "8").mkdir(parents=True)
  (w / "progress.json").write_text(json.dumps({"step": 12, "kept": {"4": 4, "8": 8, "12": 8}}))
  for name in ("config.json", "results.json", "metrics.jsonl", "predictions_test.csv"):
    (w / name).write_text(name)
  (w / "own_notes.txt").write_text("mine")
  return w


def test_auto_changes_nothing(tmp_path):
  w = _workdir(tmp_path)
  before = sorted(p.relative_to(w) for p in w.rglob("*"))
  restart.apply("auto", w)
  assert sorted(p.relative_to(w) for p in w.rglob("*")) == before


def test_from_scratch_moves_the_whole_run_aside_and_keeps_other_files(tmp_path):
  w = _workdir(tmp_path)
  restart.apply("from_scratch", w)
  moved = w / "discarded" / "1"
  assert sorted(p.name for p in moved.iterdir()) == sorted(
      ["ckpt", "best", "progress.json", "config.json", "results.json", "metrics.jsonl",
       "predictions_test.csv"])
  assert (moved / "ckpt" / "12" / "state").read_text() == "step 12"
  assert sorted(p.name for p in w.iterdir()) == ["discarded", "own_notes.txt"]
  (w / "results.json").write_text("second run")
  restart.apply("from_scratch", w)  # A second restart gets its own folder.
  assert (w / "discarded" / "2" / "results.json").read_text() == "second run"


def test_a_step_rewinds_to_that_checkpoint_and_moves_what_came_after(tmp_path):
  w = _workdir(tmp_path)
  restart.apply("8", w)
  assert sorted(p.name for p in (w / "ckpt").iterdir()) == ["4", "8"]
  assert json.loads((w / "progress.json").read_text()) == {"step": 8,
                                                           "kept": {"4": 4, "8": 8}}
  moved = w / "discarded" / "1"
  assert (moved / "ckpt" / "12" / "state").read_text() == "step 12"
  assert (moved / "results.json").exists() and not (w / "results.json").exists()
  assert (w / "config.json").exists() and (w / "metrics.jsonl").exists()


def test_a_step_with_no_checkpoint_is_refused_and_nothing_moves(tmp_path):
  w = _workdir(tmp_path)
  with pytest.raises(errors.RunError, match=r"restart=6: there is no checkpoint .*\[4, 8, 12\]"):
    restart.apply("6", w)
  assert not (w / "discarded").exists()
  with pytest.raises(errors.RunError, match="seed_<k>"):
    restart.apply("8", w, multiseed=True)
