"""The whole job as a user runs it: outputs, and a run preempted mid-epoch then killed
that resumes to the same metrics as an uninterrupted one (run.py subprocesses for the
interruptions: the process boundary is what is tested); eval and predict modes, a
different config refused, and a non-finite loss stopping the run (in process)."""

import json
import logging
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from configs import demo
from mird_jax import checkpoint
from mird_jax import config_check
from mird_jax import main
from mird_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
# The demo's smoke config on one of the suite's 8 devices: the same compiled programs as
# the session's `smoke_exp` (they differ only in run-time values), so with the suite's
# compilation cache these processes trace but do not compile.
# Every run reads one generated dataset (in DATA, made by the first run), so that no
# process spends its time generating and building it again.
DATA = pathlib.Path(tempfile.mkdtemp(prefix="mird_resume_data_"))
SMOKE = ["--config=configs/demo.py:smoke", "--config.train.epochs=2",
         "--config.train.patience=2", "--config.train.num_devices=1",
         f"--config.data.manual_dir={DATA / 'raw'}", f"--config.data.data_dir={DATA / 'tfds'}"]


def _smoke_config():
  """SMOKE as a config object, for the in-process tests on the runs' workdirs."""
  config = demo.get_config("smoke")
  config.train.epochs, config.train.patience, config.train.num_devices = 2, 2, 1
  config.data.manual_dir, config.data.data_dir = str(DATA / "raw"), str(DATA / "tfds")
  return config


def _start(workdir, *extra):
  log = open(workdir.parent / f"{workdir.name}.log", "ab")
  return subprocess.Popen([sys.executable, str(REPO / "run.py"), *SMOKE, *extra,
                           f"--workdir={workdir}"], cwd=REPO, env=dict(os.environ), stdout=log,
                          stderr=subprocess.STDOUT)


def _log(workdir):
  return (workdir.parent / f"{workdir.name}.log").read_text()


def _wait_for(predicate, proc, timeout=600):
  t0 = time.time()
  while not predicate():
    assert proc.poll() is None, "the run ended before it could be interrupted"
    assert time.time() - t0 < timeout
    time.sleep(0.2)


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
  for name in ("config.json", "metrics.jsonl", "results.json", "predictions.csv"):
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


def test_preempted_then_killed_run_resumes_to_the_same_metrics(reference, tmp_path, caplog):
  """SIGTERM during epoch 1 (the run saves its partial epoch at the next step and exits
  143), restart, SIGKILL as soon as the restarted run has trained a step (nothing saved on
  the way out: those steps are lost), then resume to the end (in this process, from what
  the killed processes left): the metrics of every epoch and the results equal those of
  the uninterrupted run."""
  workdir = tmp_path / "interrupted"
  proc = _start(workdir)
  _wait_for(lambda: "epoch 1 step 3:" in _log(workdir), proc)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=300) == 143
  assert "saved step" in _log(workdir) and "mid-epoch" in _log(workdir)
  resumed_at = len(_log(workdir))
  proc = _start(workdir)
  _wait_for(lambda: re.search(r"resuming from step .*\n(.*\n)*.*epoch \d+ step \d+:",
                              _log(workdir)[resumed_at:]), proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (workdir / "results.json").exists()
  assert _log(workdir).count("resuming from step") == 1
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(_smoke_config(), workdir)  # The same config again.
  assert "resuming from step" in caplog.text
  assert _outcome(workdir) == _outcome(reference)


def test_eval_and_predict_modes(reference, capsys):
  config = _smoke_config()
  main.run(config, str(reference), "eval", split="valid")
  printed = json.loads(capsys.readouterr().out)
  assert printed["metrics"] == json.loads((reference / "results.json").read_text())["valid"]
  main.run(config, str(reference), "predict", input_path=str(DATA / "raw" / "unlabeled.pkl"))
  rows = (reference / "predictions_unlabeled.csv").read_text().splitlines()
  assert len(rows) == 1 + 32 and rows[1].split(",")[1] == "unlabeled"


def test_a_different_config_in_the_same_workdir_is_refused(reference):
  before = {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()}
  config = _smoke_config()
  config.seed = 1
  with pytest.raises(config_check.ConfigError, match=r"different config \(changed: seed\)"):
    train.train_and_evaluate(config, reference)
  assert {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()} == before


def test_non_finite_loss_stops_with_the_term_and_step_and_keeps_the_checkpoint(
    smoke_exp, smoke_start, tmp_path):
  """A run resumed from a checkpoint whose regressor bias is inf: the first step's task
  loss is inf; the run stops naming it and the step, and the checkpoint stays."""
  state = smoke_start[0]
  params = {**state.params, "reg_out": {**state.params["reg_out"],
                                        "bias": np.full((1,), np.inf, np.float32)}}
  ckpts = checkpoint.Checkpoints(tmp_path, keep=2)
  ckpts.save_latest(0, jax.device_put(state.replace(params=params), smoke_exp.replicated),
                    {"epoch": 0, "iterator": None, "partial": None, "best": None,
                     "best_epoch": None, "stale_epochs": 0, "history": [], "done": False})
  ckpts.close()
  with pytest.raises(FloatingPointError, match=r"non-finite .*loss/task.* at step 0"):
    train.train_and_evaluate(smoke_exp.config, tmp_path, mesh=smoke_exp.mesh)
  assert (tmp_path / "ckpt" / "0").is_dir() and not (tmp_path / "results.json").exists()


def _readme_restore_snippet() -> str:
  readme = (REPO / "README.md").read_text()
  block = readme.split("<!-- restore-snippet -->", 1)[1]
  return block.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("n_devices", [1, 2])
def test_readme_restore_lines_predict_like_the_run_on_any_device_count(reference, n_devices):
  """README's restore lines, run as written (only WORKDIR and DEVICES set to this run and
  1 or 2 devices; it trained on 1): the params are the run's best, replicated on those
  devices, and they predict the run's test predictions."""
  snippet = _readme_restore_snippet()
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
  rows = input_pipeline.read_rows(test, range(4))
  batch = {k: rows[k] for k in ("text_ids", "text_mask", "text_type", "audio", "audio_len",
                                "vision", "vision_len")}
  pred, _ = jax.jit(ns["model"].apply)({"params": params}, batch)
  written = {line.split(",")[0]: float(line.split(",")[3]) for line in
             (reference / "predictions.csv").read_text().splitlines()[1:]}
  np.testing.assert_allclose(np.asarray(pred), [written[i] for i in rows["id"]], rtol=1e-5,
                             atol=1e-6)
