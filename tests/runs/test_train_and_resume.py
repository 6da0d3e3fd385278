"""The whole job as a user runs it: outputs; every moment a run can be killed at (kill -9,
SIGTERM, inside a checkpoint save, during the final writes) resumes to the same results as
an uninterrupted run (a run.py process stopped at each save point and killed -9 inside a
save; in process, a SIGTERM and the workdir each moment leaves, resumed); a damaged or
deleted checkpoint never destroys a finished run; one training per workdir; a full disk;
eval and predict; a different config refused, and a non-finite loss stopping the run."""

import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import demo
from data_pipelines import checks
from mird_jax import config_check
from mird_jax import main
from mird_jax.runs import checkpoint
from mird_jax.runs import errors
from mird_jax.runs import inference
from mird_jax.runs import save_points
from mird_jax.runs import train
from mird_jax.runs import workdir_lock

REPO = pathlib.Path(__file__).resolve().parents[2]
# The demo's smoke config on one of the suite's 8 devices: the same compiled programs as
# the session's `smoke_exp` (they differ only in run-time values), so with the suite's
# compilation cache these processes trace but do not compile. No end-of-run diagnostics
# (figures, k-NN MI): they are the research tests' business, and every resume here would
# pay for them.
# Every run reads one generated dataset (in DATA, made by the first run), so that no
# process spends its time generating and building it again.
DATA = pathlib.Path(tempfile.mkdtemp(prefix="mird_resume_data_"))
SMOKE = ["--config=configs/demo.py:smoke", "--config.train.epochs=2",
         "--config.train.patience=2", "--config.train.num_devices=1",
         "--config.diagnostics.enabled=False",
         f"--config.data.manual_dir={DATA / 'raw'}", f"--config.data.data_dir={DATA / 'tfds'}"]


def _smoke_config():
  """SMOKE as a config object, for the in-process tests on the runs' workdirs."""
  config = demo.get_config("smoke")
  config.train.epochs, config.train.patience, config.train.num_devices = 2, 2, 1
  config.diagnostics.enabled = False
  config.data.manual_dir, config.data.data_dir = str(DATA / "raw"), str(DATA / "tfds")
  return config


def _start(workdir, env=None):
  log = open(workdir.parent / f"{workdir.name}.log", "ab")
  return subprocess.Popen([sys.executable, str(REPO / "run.py"), *SMOKE,
                           f"--workdir={workdir}"], cwd=REPO, env={**os.environ, **(env or {})},
                          stdout=log, stderr=subprocess.STDOUT)


def _log(workdir):
  return (workdir.parent / f"{workdir.name}.log").read_text()


@pytest.fixture(name="reference", scope="module")
def _reference(tmp_path_factory):
  """The uninterrupted run, in this process: the same config, device and compiled programs
  as the subprocess runs below, so their results must match it bit for bit."""
  workdir = tmp_path_factory.mktemp("runs") / "reference"
  train.train_and_evaluate(_smoke_config(), workdir)
  return workdir


def _outcome(workdir):
  results = json.loads((workdir / "results.json").read_text())
  history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return results, history


def test_outputs_of_a_run(reference):
  for name in ("config.json", "metrics.jsonl", "results.json", "predictions.csv",
               "progress.json"):
    assert (reference / name).is_file(), name
  assert list((reference / "tensorboard").glob("events.out.tfevents.*"))
  assert json.loads((reference / "config.json").read_text()) == json.loads(json.dumps(
      _smoke_config().to_dict()))
  results, history = _outcome(reference)
  assert [h["epoch"] for h in history] == [1, 2]
  selected = [h for h in history if h["selected"]][-1]
  assert results["selected_epoch"] == selected["epoch"]
  assert results["valid"] == selected["valid"]  # Selection used validation only.
  assert {"Has0_acc_2", "Non0_F1_score", "Mult_acc_7", "MAE", "Corr", "MAG/Acc2",
          "MAG/MAE"} <= set(results["test"])
  rows = (reference / "predictions.csv").read_text().splitlines()
  assert rows[0] == "id,split,label,prediction" and len(rows) == 1 + 20  # Smoke test split.
  record = json.loads((reference / "progress.json").read_text())
  assert record["step"] == 12 and record["done"] and record["best_step"] == selected["step"]


class _Pausing:
  """run.py stopped at every save point (save_points.py): `on_pause(point)` runs while it
  is stopped and says what happens next: "go" on, "kill" (kill -9 now) or "kill_in_save"
  (on, and kill -9 as soon as a checkpoint save's temporary folder appears)."""

  def __init__(self, workdir, tag):
    self.workdir, self.pauses = workdir, workdir.parent / f"pauses_{tag}"
    self.pauses.mkdir()
    self.proc = _start(workdir, {save_points.ENV: str(self.pauses)})

  def point(self):
    return sorted(self.pauses.iterdir())[-1].name.split(".", 1)[1]

  def run(self, on_pause) -> int:
    pid = self.proc.pid
    while True:
      _, status = os.waitpid(pid, os.WUNTRACED)
      if not os.WIFSTOPPED(status):
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode
      action = on_pause(self.point())
      if action == "kill":
        return self._kill()
      os.kill(pid, signal.SIGCONT)
      if action == "kill_in_save":
        return self._kill_in_save()

  def _kill(self) -> int:
    os.kill(self.proc.pid, signal.SIGKILL)
    os.waitpid(self.proc.pid, 0)
    self.proc.returncode = -9
    return -9

  def _kill_in_save(self) -> int:
    t0 = time.time()
    while not list(self.workdir.glob("*/*.orbax-checkpoint-tmp*")):
      pid, status = os.waitpid(self.proc.pid, os.WUNTRACED | os.WNOHANG)
      assert pid == 0, "the run passed its next save point before a save could be caught"
      assert time.time() - t0 < 300
      time.sleep(0.001)
    return self._kill()


def _snapshot(workdir, into: pathlib.Path, states: dict, point: str):
  """Records the point passed and, for the states of RESUMED, copies the workdir as a kill
  right now would leave it, by (point, newest ckpt/ step)."""
  key = (point, (checkpoint.workdir_lib.step_dirs(workdir / "ckpt") or [None])[-1])
  states.setdefault(key, None)
  if key in RESUMED and states[key] is None:
    states[key] = into / f"{len(states):02d}_{point}_{key[1]}"
    shutil.copytree(workdir, states[key], symlinks=True)


# The states resumed, one of each kind a kill can leave that the chain of runs below does
# not resume from itself (it resumes from a kill inside a save, with best/6 complete and
# ckpt/6 unfinished, and from the mid-epoch commit): (point, newest ckpt/ step; 6 steps
# an epoch).
RESUMED = (("latest_saved", 7),  # The SIGTERM save, its commit not written.
           ("best_saved", 7),  # best/12 newer than the committed ckpt/7 (and best/6 kept).
           ("committed", 12),  # Done, metrics.jsonl not rewritten, no results yet.
           ("predictions_written", 12))  # Inside the final writes.


def test_every_kill_point_resumes_to_the_same_results(reference, tmp_path, caplog):
  """Run 1, run.py, is stopped at every save point and killed -9 inside its first
  checkpoint save (best/6 complete, ckpt/6 a temporary folder: the state that once made
  every rerun fail). Run 2, the same run in process, resumes from there; while it holds
  the workdir a second training there is refused; at the end of epoch 1 it gets SIGTERM
  and saves mid-epoch (exit 143). Run 3 is that command again to the end. The workdir at
  the points of RESUMED is copied and resumed: each, like run 3, ends with the results and
  metrics of the uninterrupted run."""
  workdir, states = tmp_path / "run", {}
  snap = lambda point: _snapshot(workdir, tmp_path / "states", states, point)

  def first(point):
    snap(point)
    return "kill_in_save" if point == "best_saved" else "go"
  assert _Pausing(workdir, 1).run(first) == -9
  assert list((workdir / "ckpt").glob("6.orbax-checkpoint-tmp*")), "not killed in the save"
  assert checkpoint.workdir_lib.step_dirs(workdir / "best") == [6]

  refused = []

  def second(point):
    snap(point)
    if point == "epoch_validated" and not refused:
      with pytest.raises(workdir_lock.WorkdirBusy, match=r"in use by another training \(pid"):
        train.train_and_evaluate(_smoke_config(), workdir)
      refused.append(point)
    if point == "history_written":  # As a preemption would, at the end of epoch 1.
      os.kill(os.getpid(), signal.SIGTERM)
  handler = signal.getsignal(signal.SIGTERM)
  save_points.observer = second
  try:
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as stopped:
      train.train_and_evaluate(_smoke_config(), workdir)
  finally:
    save_points.observer = None
  assert stopped.value.code == 143 and refused
  assert "SIGTERM: saved step 7 mid-epoch" in caplog.text
  assert signal.getsignal(signal.SIGTERM) == handler  # The run put the handler back.

  caplog.clear()
  save_points.observer = snap
  try:
    with caplog.at_level(logging.INFO):
      train.train_and_evaluate(_smoke_config(), workdir)
  finally:
    save_points.observer = None
  assert "resuming from step 7" in caplog.text
  assert _outcome(workdir) == _outcome(reference)

  points = {p for p, _ in states}
  assert {"config_written", "epoch_validated", "best_saved", "latest_saved", "committed",
          "history_written", "test_scored", "predictions_written",
          "results_written"} <= points, points
  assert all(states.get(key) for key in RESUMED), sorted(states, key=str)
  for key in RESUMED:
    resumed = tmp_path / "resumed" / states[key].name
    shutil.copytree(states[key], resumed, symlinks=True)
    train.train_and_evaluate(_smoke_config(), resumed)
    assert _outcome(resumed) == _outcome(reference), key


def test_eval_and_predict_modes(reference, capsys):
  config = _smoke_config()
  main.run(config, str(reference), "eval", split="valid")
  printed = json.loads(capsys.readouterr().out)
  results = json.loads((reference / "results.json").read_text())
  assert printed["metrics"] == results["valid"]
  assert inference.evaluate_split(config, reference, "test") == results["test"]
  main.run(config, str(reference), "predict", input_path=str(DATA / "raw" / "unlabeled.pkl"))
  rows = (reference / "predictions_unlabeled.csv").read_text().splitlines()
  assert len(rows) == 1 + 32 and rows[1].split(",")[1] == "unlabeled"
  # A labelled file, under a config that trains with an unlabelled pool: every split.
  main.run(config, str(reference), "predict", input_path=str(DATA / "raw" / "unaligned_50.pkl"))
  rows = [r.split(",") for r in
          (reference / "predictions_unaligned_50.csv").read_text().splitlines()[1:]]
  assert [sum(r[1] == s for r in rows) for s in ("train", "valid", "test")] == [48, 20, 20]
  written = {r[0]: r[3] for r in (line.split(",") for line in
                                  (reference / "predictions.csv").read_text().splitlines()[1:])}
  assert {r[0]: r[3] for r in rows if r[1] == "test"} == written  # The run's own test rows.


def test_eval_and_predict_where_nothing_was_trained_stop_before_any_work(tmp_path):
  config = _smoke_config()
  empty = tmp_path / "empty"
  empty.mkdir()
  for mode in ("eval", "predict"):
    with pytest.raises(errors.RunError, match=f"{empty} holds no trained run"):
      main.run(config, str(empty), mode, input_path=str(DATA / "raw" / "unlabeled.pkl"))
  assert not list(empty.iterdir())  # No data built, no checkpoint folders made.


def test_a_damaged_best_checkpoint_at_eval_is_one_line(reference, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(reference, workdir)
  step = checkpoint.workdir_lib.read_progress(workdir)["best_step"]
  _damage_files(workdir / "best" / str(step) / "params")
  with pytest.raises(checkpoint.CheckpointError) as e:
    main.run(_smoke_config(), str(workdir), "eval")
  assert "\n" not in str(e.value)
  assert str(e.value).startswith(f"checkpoint {workdir}/best/{step} cannot be restored (")
  assert "--step=N scores one" in str(e.value)


def _damage_files(directory):
  damaged = 0
  for f in directory.rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
      f.write_bytes(np.random.default_rng(0).bytes(f.stat().st_size))
      damaged += 1
  assert damaged


def _files(workdir, names=("results.json", "predictions.csv", "metrics.jsonl")):
  return {n: (workdir / n).read_bytes() for n in names}


def test_a_deleted_latest_checkpoint_and_a_full_disk_leave_the_run_resumable(
    reference, tmp_path, monkeypatch):
  """The issue's repro (ckpt/12 of a finished run deleted): one line naming it and the
  older step to resume from, nothing changed; resumed from there on a disk that fills up
  while ckpt/12 is written: one line, the commit stays at step 6; the space freed, the same
  command finishes with the uninterrupted run's results, the old ones moved aside."""
  workdir = tmp_path / "w"
  shutil.copytree(reference, workdir)
  finished = _files(workdir)
  shutil.rmtree(workdir / "ckpt" / "12")
  with pytest.raises(checkpoint.CheckpointError) as e:
    train.train_and_evaluate(_smoke_config(), workdir)
  assert "\n" not in str(e.value) and (
      f"checkpoint {workdir}/ckpt/12, the last the run committed, cannot be restored (it is "
      "missing); nothing was changed. To go on, resume from an older one with "
      "--config.train.restart=6 (kept: [6]), or start over with "
      "--config.train.restart=from_scratch") in str(e.value)
  assert _files(workdir) == finished and checkpoint.workdir_lib.step_dirs(
      workdir / "best") == [6, 12]

  real_save = ocp.CheckpointManager.save

  def full_disk(self, step, *args, **kwargs):
    if pathlib.Path(self.directory).name == "ckpt" and step == 12:
      partial = pathlib.Path(self.directory) / "12.orbax-checkpoint-tmp-1"
      partial.mkdir()  # What a write cut short leaves.
      (partial / "_sharding").write_bytes(b"\0" * 64)
      raise ValueError("RESOURCE_EXHAUSTED: Failed to write 103833 bytes: No space left")
    return real_save(self, step, *args, **kwargs)
  monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
  config = _smoke_config()
  config.train.restart = "6"
  with pytest.raises(checkpoint.CheckpointError, match=(
      rf"^cannot write checkpoint {workdir}/ckpt/12 \(ValueError: RESOURCE_EXHAUSTED: Failed "
      rf"to write 103833 bytes: No space left\); the run is committed up to step 6 ")):
    train.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  assert (workdir / "discarded" / "1" / "best" / "12").is_dir()
  assert _files(workdir / "discarded" / "1", ("results.json", "predictions.csv")) == {
      k: v for k, v in finished.items() if k != "metrics.jsonl"}
  train.train_and_evaluate(_smoke_config(), workdir)
  assert _outcome(workdir) == _outcome(reference)


class _Stop(Exception):
  """Raised by a save point observer: the run stops there (as a kill would)."""


def _stop_at(point):
  def observer(name):
    if name == point:
      raise _Stop(name)
  return observer


def test_damaged_checkpoints_never_start_a_silent_retraining(reference, tmp_path):
  """Every latest checkpoint damaged: refused in one line, best/ and the results as they
  were; --config.train.restart=from_scratch moves the whole run aside, then trains."""
  workdir = tmp_path / "w"
  shutil.copytree(reference, workdir)
  finished = _files(workdir)
  for step in (6, 12):
    _damage_files(workdir / "ckpt" / str(step) / "state")
  best_before = sorted(str(p) for p in (workdir / "best").rglob("*"))
  with pytest.raises(checkpoint.CheckpointError, match="ckpt/12, the last the run committed"):
    train.train_and_evaluate(_smoke_config(), workdir)
  assert _files(workdir) == finished
  assert sorted(str(p) for p in (workdir / "best").rglob("*")) == best_before
  config = _smoke_config()
  config.train.restart = "from_scratch"
  save_points.observer = _stop_at("config_written")
  try:
    with pytest.raises(_Stop):
      train.train_and_evaluate(config, workdir)
  finally:
    save_points.observer = None
  old = workdir / "discarded" / "1"
  assert _files(old) == finished and checkpoint.workdir_lib.step_dirs(old / "ckpt") == [6, 12]
  assert not any((workdir / n).exists() for n in ("ckpt", "best", "results.json",
                                                   "progress.json", "metrics.jsonl"))
  assert json.loads((workdir / "config.json").read_text())["train"]["restart"] == "from_scratch"


def test_a_workdir_where_no_run_trained_takes_the_corrected_config(tmp_path):
  """A run that stopped on its data before any step does not claim the workdir: the
  corrected command is accepted (stopped right after its config is recorded)."""
  workdir = tmp_path / "w"
  wrong = _smoke_config()
  wrong.data.label_max = 0.1  # The synthetic labels go beyond it.
  with pytest.raises(checks.DataError, match=r"expected labels in \[-3, 0.1\]"):
    train.train_and_evaluate(wrong, workdir)
  save_points.observer = _stop_at("config_written")
  try:
    with pytest.raises(_Stop):
      train.train_and_evaluate(_smoke_config(), workdir)
  finally:
    save_points.observer = None
  assert json.loads((workdir / "config.json").read_text())["data"]["label_max"] == 3.0


def test_a_different_config_in_the_same_workdir_is_refused(reference):
  files = lambda: {p.name: p.read_bytes() for p in reference.iterdir()
                   if p.is_file() and p.name != workdir_lock.NAME}  # It says who tried.
  before = files()
  config = _smoke_config()
  config.seed = 1
  with pytest.raises(config_check.ConfigError, match=r"different config \(changed: seed\)"):
    train.train_and_evaluate(config, reference)
  assert files() == before


def test_keys_that_are_not_the_runs_identity_may_change_or_be_missing(tmp_path):
  """train.restart, data.max_abs_feature, num_seeds and the sweep settings: changed on a
  rerun, or absent from the config.json of a workdir written before they existed, the run
  is still the same one."""
  from mird_jax.runs import outputs  # pylint: disable=g-import-not-at-top
  config = _smoke_config()
  old = json.loads(json.dumps(config.to_dict()))
  del old["train"]["restart"], old["data"]["max_abs_feature"], old["sweep"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  config.train.restart, config.data.max_abs_feature = "from_scratch", 10.0
  config.num_seeds, config.sweep.trials = 7, 3
  outputs.record_config(config, tmp_path, holds_progress=True)
  assert json.loads((tmp_path / "config.json").read_text()) == old  # Kept as it was.
  config.data.label_max = 2.0
  with pytest.raises(config_check.ConfigError, match=r"changed: data.label_max\)"):
    outputs.record_config(config, tmp_path, holds_progress=True)


def test_non_finite_loss_stops_with_the_term_and_step_and_keeps_the_checkpoint(
    smoke_exp, smoke_start, tmp_path):
  """A run resumed from a checkpoint whose regressor bias is inf: the first step's task
  loss is inf; the run stops naming it, the step and the checkpoint it is committed up to
  (true: that checkpoint is there, untouched)."""
  state = smoke_start[0]
  params = {**state.params, "reg_out": {**state.params["reg_out"],
                                        "bias": np.full((1,), np.inf, np.float32)}}
  ckpts = checkpoint.Checkpoints(tmp_path, keep=2)
  meta = {"epoch": 0, "iterator": None, "partial": None, "best": None, "best_epoch": None,
          "stale_epochs": 0, "history": [], "done": False}
  ckpts.save_latest(0, jax.device_put(state.replace(params=params), smoke_exp.replicated), meta)
  ckpts.commit(0, meta)
  ckpts.close()
  before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "ckpt" / "0").rglob("*"))
  with pytest.raises(FloatingPointError, match=(
      rf"non-finite .*loss/task.* at step 0; the run is committed up to step 0 "
      rf"\({tmp_path}/ckpt/0\)")):
    train.train_and_evaluate(smoke_exp.config, tmp_path, mesh=smoke_exp.mesh)
  assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "ckpt" / "0").rglob("*")) == before
  assert not (tmp_path / "results.json").exists()
  # Before any checkpoint, it says that there is none.
  committed = checkpoint.Checkpoints(tmp_path / "fresh", keep=2).committed_text()
  assert committed == "no step (no checkpoint yet)"


def _documented_restore_snippet() -> str:
  usage = (REPO / "docs" / "usage.md").read_text()
  block = usage.split("<!-- restore-snippet -->", 1)[1]
  return block.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("n_devices", [1, 2])
def test_the_documented_restore_lines_predict_like_the_run_on_any_device_count(reference, n_devices):
  """docs/usage.md's restore lines, run as written (only WORKDIR and DEVICES set to this run and
  1 or 2 devices; it trained on 1): the params are the run's best, replicated on those
  devices, and they predict the run's test predictions."""
  snippet = _documented_restore_snippet()
  line = 'WORKDIR, DEVICES = "/tmp/mird_demo", jax.devices()  # a finished run; any devices'
  assert line in snippet
  ns = {}
  exec(snippet.replace(line, f"WORKDIR, DEVICES = {str(reference)!r}, "  # pylint: disable=exec-used
                       f"jax.devices()[:{n_devices}]"), ns)
  params = ns["params"]
  assert all(len(x.sharding.device_set) == n_devices for x in jax.tree.leaves(params))
  assert ns["prediction"].shape == (2,) and np.all(np.isfinite(np.asarray(ns["prediction"])))
  ckpts = checkpoint.Checkpoints(reference, 2)
  try:
    best = ckpts.restore_best_params(jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), ns["target"]))
  finally:
    ckpts.close()
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params), jax.device_get(best))
  # The run's own test predictions, from the restored params and the test split's examples.
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  from data_pipelines import tfds_builders  # pylint: disable=g-import-not-at-top
  config = _smoke_config()
  test = tfds_builders.prepare(config, reference)["test"]
  rows = input_pipeline.read_rows(test, range(2))  # The snippet's batch size: its program.
  batch = {k: jax.numpy.asarray(rows[k]) for k in (
      "text_ids", "text_mask", "text_type", "audio", "audio_len", "vision", "vision_len")}
  pred, _ = jax.jit(ns["model"].apply)({"params": params}, batch)
  written = {line.split(",")[0]: float(line.split(",")[3]) for line in
             (reference / "predictions.csv").read_text().splitlines()[1:]}
  np.testing.assert_allclose(np.asarray(pred), [written[i] for i in rows["id"]], rtol=1e-5,
                             atol=1e-6)
