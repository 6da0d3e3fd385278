"""--mode=sweep in several processes at once, the process boundary being what is tested:
two workers on one SQLite study, one of them a run.py process killed (kill -9) in the
middle of its trial, whose trial a worker started afterwards resumes; two workers on one
study in a real PostgreSQL server this file starts (and removes).

In each pair one worker is a run.py process and the other runs here, in the test's own
process, with the same config (so with the compiled programs the session already holds):
the two still claim trials through the study and the trials' file locks, as two
machines would.

Both sweeps draw their trials with the random sampler, seeded per trial number, so trial
n has the same values in both; the same config, device and compiled programs make its
metrics the same bit for bit, wherever and however often it was interrupted, in whichever
process it ran.
"""

import contextlib
import glob
import io
import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import optuna
import pytest

from configs import sweeps
from mird_jax import main
from mird_jax.runs import save_points

REPO = pathlib.Path(__file__).resolve().parents[2]
TRIALS = 3
SWEEP = ["--config=configs/sweeps.py:smoke,mird", "--mode=sweep", "--config.train.epochs=2",
         "--config.train.patience=2", "--config.train.num_devices=1",
         "--config.diagnostics.enabled=False", "--config.sweep.sampler=random",
         f"--config.sweep.trials={TRIALS}"]


def _start(workdir: pathlib.Path, name: str, *extra, env=None) -> subprocess.Popen:
  workdir.mkdir(parents=True, exist_ok=True)
  log = open(workdir.parent / f"{workdir.name}.{name}.log", "wb")
  return subprocess.Popen([sys.executable, str(REPO / "run.py"), *SWEEP, f"--workdir={workdir}",
                           *extra], cwd=REPO, env={**os.environ, **(env or {})}, stdout=log,
                          stderr=subprocess.STDOUT)


def _log(workdir: pathlib.Path, name: str) -> str:
  return (workdir.parent / f"{workdir.name}.{name}.log").read_text()


def _config(storage: str = ""):
  """SWEEP's config, built here as run.py builds it from those flags."""
  config = sweeps.get_config("smoke,mird")
  config.train.epochs = config.train.patience = 2
  config.train.num_devices = 1
  config.diagnostics.enabled = False
  config.sweep.sampler, config.sweep.trials, config.sweep.storage = "random", TRIALS, storage
  config.lock()
  return config


def _run_here(workdir: pathlib.Path, name: str, storage: str = "") -> None:
  """A worker in this process: run.py's sweep mode on _config(); what it prints and logs
  go to the log file a run.py worker would write."""
  out, handler, root = io.StringIO(), logging.StreamHandler(), logging.getLogger()
  handler.setStream(out)
  level = root.level
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  try:
    with contextlib.redirect_stdout(out):
      main.run(_config(storage), str(workdir), "sweep")
  finally:
    root.removeHandler(handler)
    root.setLevel(level)
    (workdir.parent / f"{workdir.name}.{name}.log").write_text(out.getvalue())


def _wait(proc, workdir, name, timeout=420) -> None:
  assert proc.wait(timeout=timeout) == 0, _log(workdir, name)[-3000:]


def _study(workdir: pathlib.Path, storage: str | None = None):
  report = json.loads((workdir / "sweep.json").read_text())
  return optuna.load_study(study_name=report["study"],
                           storage=storage or f"sqlite:///{workdir / 'sweep.db'}")


def _valid(workdir: pathlib.Path, number: int) -> dict:
  return json.loads((workdir / f"trial_{number}" / "results.json").read_text())["valid"]


def _trials_ran(log: str) -> list[int]:
  return [int(line.split()[2]) for line in log.splitlines()
          if line.startswith("sweep: trial ") and " ended): " in line]


def _check_exactly_the_budget(study, workdir) -> None:
  trials = study.get_trials()
  assert sorted(t.number for t in trials) == list(range(TRIALS))
  assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
  assert sorted(t.user_attrs["workdir"] for t in trials) == [f"trial_{n}" for n in
                                                             range(TRIALS)]
  assert sorted(p.name for p in workdir.glob("trial_*")) == [f"trial_{n}"
                                                              for n in range(TRIALS)]
  report = json.loads((workdir / "sweep.json").read_text())
  assert report["counts"]["COMPLETE"] == TRIALS and len(report["trials"]) == TRIALS


@pytest.fixture(name="sqlite_sweep", scope="module")
def _sqlite_sweep(tmp_path_factory, smoke_exp):
  """Workers a (run.py) and b (here) on one SQLite study; a stopped after the first epoch
  of its trial (it holds the trial), b runs the others and ends; then a is killed
  (kill -9), and a worker started afterwards (here) resumes its trial."""
  del smoke_exp  # Its compiled programs are the ones the workers here run.
  workdir = tmp_path_factory.mktemp("sqlite") / "sweep"
  pauses = workdir.parent / "pauses"
  pauses.mkdir()
  a = _start(workdir, "a", env={save_points.ENV: str(pauses)})
  while True:  # a goes on at every save point until its first epoch is committed.
    _, status = os.waitpid(a.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), _log(workdir, "a")[-3000:]
    if sorted(pauses.iterdir())[-1].name.endswith(".history_written"):
      break
    os.kill(a.pid, signal.SIGCONT)
  _run_here(workdir, "b")  # While a, stopped, holds its trial.
  shutil.copy(workdir / "sweep.json", workdir.parent / "sweep.b.json")  # b's report.
  os.kill(a.pid, signal.SIGKILL)
  os.waitpid(a.pid, 0)
  a.returncode = -9
  _run_here(workdir, "a_restarted")
  return workdir


def test_two_workers_on_sqlite_run_exactly_the_budget_none_twice(sqlite_sweep):
  _check_exactly_the_budget(_study(sqlite_sweep), sqlite_sweep)
  ran_b = _trials_ran(_log(sqlite_sweep, "b"))
  ran_a = _trials_ran(_log(sqlite_sweep, "a_restarted"))
  assert ran_b and len(ran_a) == 1 and sorted(ran_a + ran_b) == list(range(TRIALS))
  assert "still run in other workers" in _log(sqlite_sweep, "b")  # b left a's trial alone.
  # b's report, written while a's trial ran, leaves the plots to the last worker.
  interim = json.loads((sqlite_sweep.parent / "sweep.b.json").read_text())
  assert interim["plots"]["sweep_history.png"].startswith(
      f"not drawn yet: trials {ran_a} still run in other workers")
  assert json.loads((sqlite_sweep / "sweep.json").read_text())["plots"][
      "sweep_history.png"] == "" and (sqlite_sweep / "sweep_history.png").is_file()


def test_a_killed_worker_resumes_its_trial_where_it_stopped(sqlite_sweep):
  log = _log(sqlite_sweep, "a_restarted")
  (number,) = _trials_ran(log)
  assert f"trial {number}: its worker stopped; resuming it from its last checkpoint" in log
  assert "resuming from step 6 (epoch 2)" in log  # From the first epoch's checkpoint.
  study = _study(sqlite_sweep)
  assert sorted(study.trials[number].intermediate_values) == [1, 2]


def _free_port() -> int:
  with contextlib.closing(socket.socket()) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _postgres_bin() -> pathlib.Path | None:
  found = shutil.which("pg_ctl")
  if found:
    return pathlib.Path(os.path.realpath(found)).parent
  candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
  return pathlib.Path(candidates[-1]).parent if candidates else None


@pytest.fixture(name="postgres", scope="module")
def _postgres():
  """A throw-away PostgreSQL cluster on a free local port: its URL. As root, the server
  runs as the `postgres` user (it refuses to run as root)."""
  bindir = _postgres_bin()
  if bindir is None:
    message = ("PostgreSQL's server (initdb, pg_ctl) is not installed; .ci/run installs "
               "Debian's postgresql package")
    if os.environ.get("CI"):
      pytest.fail(message)
    pytest.skip(message)
  root = pathlib.Path(tempfile.mkdtemp(prefix="mird_pg_"))
  as_user = []
  if os.geteuid() == 0:
    shutil.chown(root, "postgres")
    as_user = ["runuser", "-u", "postgres", "--"]
  port, data = _free_port(), root / "data"
  run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True,
                                    text=True, timeout=120)
  run(str(bindir / "initdb"), "-D", str(data), "-U", "mird", "-A", "trust")
  run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
      "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
  try:
    run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mird", "sweeps")
    yield f"postgresql://mird@127.0.0.1:{port}/sweeps"
  finally:
    run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(name="postgres_sweep", scope="module")
def _postgres_sweep(postgres, tmp_path_factory, smoke_exp):
  """Workers c (run.py) and d (here) on one study in the server; d starts once c has
  claimed a trial, so that both run some (a run.py process takes seconds to start)."""
  del smoke_exp
  workdir = tmp_path_factory.mktemp("postgres") / "sweep"
  c = _start(workdir, "c", f"--config.sweep.storage={postgres}")
  t0 = time.time()
  while not list(workdir.glob("trial_*/overrides.json")):
    assert c.poll() is None, _log(workdir, "c")[-3000:]
    assert time.time() - t0 < 300, "worker c claimed no trial"
    time.sleep(0.05)
  _run_here(workdir, "d", postgres)
  _wait(c, workdir, "c")
  return workdir


def test_two_workers_share_one_study_in_postgresql(postgres, postgres_sweep):
  assert not (postgres_sweep / "sweep.db").exists()  # The study lives in the server.
  study = _study(postgres_sweep, postgres)
  _check_exactly_the_budget(study, postgres_sweep)
  ran = {name: _trials_ran(_log(postgres_sweep, name)) for name in ("c", "d")}
  assert all(ran.values()) and sorted(ran["c"] + ran["d"]) == list(range(TRIALS))


def test_every_trial_has_the_metrics_of_its_uninterrupted_run(sqlite_sweep, postgres,
                                                              postgres_sweep):
  sqlite, pg = _study(sqlite_sweep), _study(postgres_sweep, postgres)
  for n in range(TRIALS):
    assert sqlite.trials[n].params == pg.trials[n].params  # Seeded per trial number.
    assert _valid(sqlite_sweep, n) == _valid(postgres_sweep, n)
    assert sqlite.trials[n].value == pg.trials[n].value
