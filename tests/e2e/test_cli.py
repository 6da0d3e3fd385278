"""run.py as a user runs it: bad input stops in one clear line before any work.

Each case runs run.py's entry point in a process of its own, forked from one that has
imported what run.py imports (tests/e2e/run_py_forks.py): the exit status and every line
printed are the process's. One case also runs `python run.py` itself. The cases that
import JAX (describe, a too-small train split, missing data files) run in this process,
and run._main's mapping of their errors to one line is checked on its own below.
Subprocesses inherit the suite's environment (8 faked devices, its compilation cache).
"""

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from configs import demo
from configs import mosi
from data_pipelines import checks
from mird_jax import config_check
from mird_jax import main


REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class _Done:
  returncode: int
  stdout: str
  stderr: str


@pytest.fixture(name="forks", scope="module")
def _forks():
  server = subprocess.Popen([sys.executable, str(REPO / "tests" / "e2e" / "run_py_forks.py")],
                            cwd=REPO, env=dict(os.environ), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
  ready = json.loads(server.stdout.readline())
  # run.py's imports print nothing and start no thread (a fork copies only the caller).
  assert ready == {"ready": 1, "import_output": ""}, ready

  def run_py(*args, cwd=REPO) -> _Done:
    server.stdin.write(json.dumps({"argv": list(args), "cwd": str(cwd)}) + "\n")
    server.stdin.flush()
    return _Done(**json.loads(server.stdout.readline()))
  yield run_py
  server.stdin.close()
  assert server.wait(timeout=60) == 0


@pytest.mark.parametrize("args, message", [
    (["--config=configs/nope.py"], "--config=configs/nope.py: cannot load it: .*No such file"),
    (["--config=configs/mosi.py", "--config.data.batchsize=3"],
     "--config.data.batchsize: the config has no key 'batchsize'. Did you mean \"batch_size\""),
    (["--config=configs/mosi.py", "--config.nope=1"], "--config.nope: the config has no key"),
    (["--config=configs/mosi.py", "--mode=fit"], "--mode=fit: value should be one of"),
    (["--config=configs/mosi.py:smok"], "unknown config variant 'smok'"),
    (["--config=configs/mosi.py", "--config.data.batch_size=abc"],
     "--config.data.batch_size=abc"),
    (["--config=configs/mosi.py", "--config.model.constraint=mi"],
     "model.constraint='mi' is not allowed; expected one of 'mim', 'orthogonal', 'none'$"),
    (["--config=configs/mosi.py", "--config.model.fusion=mag"],
     "model.fusion='mag' is not allowed; expected one of 'wsa', 'wa'$"),
    (["--config=configs/mosi.py", "--config.train.select_metric=Acc"],
     "train.select_metric='Acc' is not allowed; expected one of 'Has0_acc_2', "),
    (["--config=configs/mosi.py", "--config.train.select_mode=lowest"],
     "train.select_mode='lowest' is not allowed; expected one of 'min', 'max'$"),
    (["--config=configs/mosi.py", "--config.model.text_recon_target=ids"],
     "model.text_recon_target='ids' is not allowed"),
    (["--config=configs/mosi.py", "--config.optim.schedule=cosine"],
     "optim.schedule='cosine' is not allowed; expected one of 'warmup_decay', 'public_ramp', "
     "'constant'$"),
    (["--config=configs/ablations.py:demo,nc"], "ABLATION one of mim, none, orthogonal"),
    (["--mode=multiseed"], "--mode=multiseed needs --config$"),
    (["--mode=compare"], "--mode=compare needs --workdirs=DIR1,DIR2,...$"),
    (["--mode=compare", "--workdirs=/nonexistent/runs/mim"],
     "/nonexistent/runs/mim/summary.json: no such file; run --mode=multiseed"),
    (["--config=configs/mosi.py", "--config.num_seeds=0", "--mode=multiseed"],
     "num_seeds=0 must be > 0$"),
    (["--config=configs/demo.py:smoke", "--config.optim.bert_lr=inf"],
     "optim.bert_lr=inf must be a finite number$"),
    (["--config=configs/mosi.py", "--config.loss.w_mi=nan"], "loss.w_mi=nan must be a finite"),
    (["--config=configs/mosi.py", "--config.train.restart=latest"],
     "train.restart='latest' is not allowed; expected 'auto', 'from_scratch' or a step"),
    (["--config=configs/mosi.py", "--mode=eval", "--split=nosuch"],
     "--split='nosuch' is not a split of this dataset; expected one of train, valid, test$"),
    (["--config=configs/demo.py:smoke", "--mode=eval"],
     "/w: no such directory; --mode=eval restores a run trained there"),
    (["--config=configs/demo.py:smoke", "--mode=robustness"],
     "/w: no such directory; --mode=robustness restores a run trained there"),
    (["--config=configs/demo.py:smoke", "--config.robustness.conditions=('blur:2',)"],
     "robustness.conditions: robustness condition 'blur:2': expected clean, remove:"),
    (["--config=configs/demo.py:smoke", "--mode=predict", "--input=/x.pkl"],
     "/w: no such directory; --mode=predict restores"),
    (["--config=configs/sweeps.py:smoke,mird", "--mode=sweep",
      "--config.sweep.space=(('optim.main_lrr', 'loguniform(1e-4, 1e-2)'),)"],
     "sweep.space\\['optim.main_lrr'\\]: optim has no key 'main_lrr'. Did you mean \"main_lr\""),
    (["--config=configs/mosi.py", "--mode=sweep"], "sweep.space is empty: declare"),
    (["--config=configs/sweeps.py:smoke,mird", "--mode=sweep", "--config.sweep.sampler=grid"],
     "sweep.sampler='grid' is not allowed; expected one of 'tpe', 'random'$"),
    (["--config=configs/sweeps.py:smoke,mird", "--mode=sweep",
      "--config.sweep.storage=mysql://user@host/db"],
     "sweep.storage: no Python driver for mysql:// URLs is installed"),
    (["--config=configs/mosi.py", "--config.data.unlabeled_ratio=2"],
     "data.unlabeled_ratio=2.0 asks for unlabelled examples but no pool is configured: name "
     "one with --config.data.unlabeled_file=FILE"),
])
def test_bad_input_stops_in_one_line(forks, tmp_path, args, message):
  workdir = tmp_path / "w"
  proc = forks(*args, f"--workdir={workdir}")
  assert proc.returncode != 0
  lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
  assert len(lines) == 1, lines
  assert lines[0].startswith("run.py: ")
  assert re.search(message, lines[0]), lines[0]
  assert not workdir.exists(), "bad input must stop before any work"


def test_a_config_with_a_syntax_error_and_a_workdir_that_is_a_file(forks, tmp_path):
  bad = tmp_path / "bad_config.py"
  bad.write_text("def get_config(:\n  pass\n")
  afile = tmp_path / "afile"
  afile.write_text("")
  for args, message in (
      ([f"--config={bad}", f"--workdir={tmp_path}/w"],
       f"--config: {bad}, line 1: invalid syntax: def get_config(:"),
      (["--config=configs/demo.py:smoke", f"--workdir={afile}"],
       f"--workdir={afile} is an existing file; name a directory"),
      (["--config=configs/demo.py:smoke", f"--workdir={afile}/sub"],
       f"--workdir={afile}/sub lies under {afile}, which is a file")):
    proc = forks(*args)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("run.py: ") and message in lines[0], lines


def _locked(config):
  config.lock()  # As run.py loads it.
  return config


def test_missing_data_files_are_named_with_instructions(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    main.run(_locked(mosi.get_config("smoke")), str(tmp_path), "train")
  line = str(e.value)  # run._main prints it as "run.py: " + line (the test below).
  assert "\n" not in line
  assert line.startswith(f"{tmp_path}/tfds/downloads/manual/unaligned_50.pkl: no such")
  assert "MOSI/Processed/unaligned_50.pkl" in line


def test_describe_mode_needs_no_workdir(capsys):
  main.run(_locked(mosi.get_config("smoke")), None, "describe")
  out = capsys.readouterr().out
  assert "parameters:" in out and "forward FLOPs" in out


def test_a_train_split_smaller_than_one_batch_is_one_line(tmp_path):
  config = demo.get_config("smoke")
  config.data.batch_size = 64
  with pytest.raises(checks.DataError) as e:
    main.run(_locked(config), str(tmp_path), "train")
  assert str(e.value) == (
      "the train split has 48 examples, fewer than one global batch "
      "(data.batch_size=64): lower data.batch_size, raise data.label_fraction or use more "
      "training data")


def test_missing_workdir_is_named():
  """The one case run as a user types it: `python run.py` in a new interpreter."""
  proc = subprocess.run([sys.executable, str(REPO / "run.py"), "--config=configs/mosi.py"],
                        cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 1
  assert proc.stdout == "" and proc.stderr.splitlines() == [
      "run.py: --mode=train needs --workdir"]


def test_a_full_disk_or_a_non_finite_loss_is_one_line(tmp_path, monkeypatch):
  """What the run raises when the machine fails it (a full disk, here in the TensorBoard
  writer) or the loss goes non-finite becomes one line; other errors keep their traceback."""
  import errno  # pylint: disable=g-import-not-at-top
  import run  # pylint: disable=g-import-not-at-top  # Defines run.py's flags, once.
  run._parse_flags(["run.py", "--config=configs/demo.py:smoke", f"--workdir={tmp_path}"])
  events = tmp_path / "tensorboard" / "events"
  for error, line in (
      (OSError(errno.ENOSPC, "No space left on device", str(events)),
       f"run.py: [Errno 28] No space left on device: '{events}'; the run is kept up to its "
       "last committed checkpoint: fix this, then run the same command to resume"),
      (FloatingPointError("non-finite loss/task at step 3; the run is committed up to step 0"),
       "run.py: non-finite loss/task at step 3; the run is committed up to step 0"),
      # What the in-process cases above raise: each becomes "run.py: " and its text.
      (FileNotFoundError("/w/raw/unaligned_50.pkl: no such file"),
       "run.py: /w/raw/unaligned_50.pkl: no such file"),
      (checks.DataError("the train split has 48 examples"),
       "run.py: the train split has 48 examples"),
      (config_check.ConfigError("model.constraint='mi' is not allowed"),
       "run.py: model.constraint='mi' is not allowed")):
    def fail(*args, error=error, **kwargs):
      raise error
    monkeypatch.setattr(run.mird_main, "run", fail)
    with pytest.raises(SystemExit) as e:
      run._main(["run.py"])
    assert str(e.value) == line
  monkeypatch.setattr(run.mird_main, "run", lambda *a, **k: open("/", "rb"))
  with pytest.raises(IsADirectoryError):  # A bug, not the machine: the traceback stays.
    run._main(["run.py"])
