"""The whole job as a user runs it: outputs, a killed run resumed to the same metrics,
SIGTERM mid-epoch, eval and predict modes, and a non-finite loss stopping the run."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = ["--config=configs/demo.py:smoke", "--config.train.epochs=3",
         "--config.train.patience=3"]


def _env(cache):
  # One device per run (as a user's CPU run); a shared compilation cache across the runs.
  return {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu",
          "JAX_COMPILATION_CACHE_DIR": str(cache),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _start(workdir, cache, *extra):
  log = open(workdir.parent / f"{workdir.name}.log", "ab")
  return subprocess.Popen([sys.executable, str(REPO / "run.py"), *SMOKE, *extra,
                           f"--workdir={workdir}"], cwd=REPO, env=_env(cache), stdout=log,
                          stderr=subprocess.STDOUT)


def _run(workdir, cache, *extra):
  proc = _start(workdir, cache, *extra)
  assert proc.wait(timeout=600) == 0, (workdir.parent / f"{workdir.name}.log").read_text()[-3000:]


def _log(workdir):
  return (workdir.parent / f"{workdir.name}.log").read_text()


def _wait_for(predicate, proc, timeout=600):
  t0 = time.time()
  while not predicate():
    assert proc.poll() is None, "the run ended before it could be interrupted"
    assert time.time() - t0 < timeout
    time.sleep(0.2)


@pytest.fixture(name="cache", scope="module")
def _cache(tmp_path_factory):
  return tmp_path_factory.mktemp("xla_cache")


@pytest.fixture(name="reference", scope="module")
def _reference(tmp_path_factory, cache):
  workdir = tmp_path_factory.mktemp("runs") / "reference"
  _run(workdir, cache)
  return workdir


def _outcome(workdir):
  results = json.loads((workdir / "results.json").read_text())
  history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return results, history


def test_outputs_of_a_run(reference):
  for name in ("config.json", "metrics.jsonl", "results.json", "predictions.csv"):
    assert (reference / name).is_file(), name
  assert list((reference / "tensorboard").glob("events.out.tfevents.*"))
  assert json.loads((reference / "config.json").read_text())["train"]["epochs"] == 3
  results, history = _outcome(reference)
  assert [h["epoch"] for h in history] == [1, 2, 3]
  selected = [h for h in history if h["selected"]][-1]
  assert results["selected_epoch"] == selected["epoch"]
  assert results["valid"] == selected["valid"]  # Selection used validation only.
  assert {"Has0_acc_2", "Non0_F1_score", "Mult_acc_7", "MAE", "Corr", "MAG/Acc2",
          "MAG/MAE"} <= set(results["test"])
  rows = (reference / "predictions.csv").read_text().splitlines()
  assert rows[0] == "id,split,label,prediction" and len(rows) == 1 + 20  # Smoke test split.


def test_killed_run_resumes_to_the_same_metrics(reference, cache, tmp_path):
  workdir = tmp_path / "killed"
  proc = _start(workdir, cache)
  metrics = workdir / "metrics.jsonl"
  _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 1, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (workdir / "results.json").exists()
  _run(workdir, cache)  # The same command again.
  assert "resuming from step" in _log(workdir)
  assert _outcome(workdir) == _outcome(reference)


def test_sigterm_mid_epoch_saves_and_resumes_exactly(reference, cache, tmp_path):
  workdir = tmp_path / "preempted"
  proc = _start(workdir, cache)
  _wait_for(lambda: "epoch 2 step 3:" in _log(workdir), proc)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=300) == 143
  assert "saved step" in _log(workdir) and "mid-epoch" in _log(workdir)
  _run(workdir, cache)
  assert _outcome(workdir) == _outcome(reference)


def test_eval_and_predict_modes(reference, cache):
  out = subprocess.run([sys.executable, str(REPO / "run.py"), *SMOKE, "--mode=eval",
                        "--split=valid", f"--workdir={reference}"], cwd=REPO,
                       env=_env(cache), capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  printed = json.loads(out.stdout)
  assert printed["metrics"] == json.loads((reference / "results.json").read_text())["valid"]
  out = subprocess.run([sys.executable, str(REPO / "run.py"), *SMOKE, "--mode=predict",
                        f"--input={reference / 'raw' / 'unlabeled.pkl'}",
                        f"--workdir={reference}"], cwd=REPO, env=_env(cache),
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  rows = (reference / "predictions_unlabeled.csv").read_text().splitlines()
  assert len(rows) == 1 + 32 and rows[1].split(",")[1] == "unlabeled"


def test_a_different_config_in_the_same_workdir_is_refused(reference, cache):
  before = (reference / "results.json").read_text()
  out = subprocess.run([sys.executable, str(REPO / "run.py"), *SMOKE, "--config.seed=1",
                        f"--workdir={reference}"], cwd=REPO, env=_env(cache),
                       capture_output=True, text=True, timeout=600)
  assert out.returncode != 0 and "different config (changed: seed)" in out.stderr
  assert (reference / "results.json").read_text() == before


def test_non_finite_loss_stops_with_the_term_and_step(cache, tmp_path):
  workdir = tmp_path / "nan"
  proc = _start(workdir, cache, "--config.optim.main_lr=1e30", "--config.optim.bert_lr=1e30",
                "--config.optim.warmup_frac=0.0")
  assert proc.wait(timeout=600) != 0
  assert "FloatingPointError: non-finite" in _log(workdir) and "at step" in _log(workdir)
