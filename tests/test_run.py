"""run.py as a user runs it: bad input stops in one clear line before any work."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(*args, cwd=REPO):
  env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--config=configs/nope.py"], "--config=configs/nope.py: cannot load it: .*No such file"),
    (["--config=configs/mosi.py", "--config.data.batchsize=3"],
     "--config.data.batchsize: the config has no key 'batchsize'. Did you mean \"batch_size\""),
    (["--config=configs/mosi.py", "--config.nope=1"], "--config.nope: the config has no key"),
    (["--config=configs/mosi.py", "--mode=fit"], "--mode=fit: value should be one of"),
    (["--config=configs/mosi.py:smok"], "unknown config variant 'smok'"),
    (["--config=configs/mosi.py", "--config.data.batch_size=abc"],
     "--config.data.batch_size=abc"),
])
def test_bad_input_stops_in_one_line(tmp_path, args, message):
  workdir = tmp_path / "w"
  proc = _run(*args, f"--workdir={workdir}")
  assert proc.returncode != 0
  lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
  assert len(lines) == 1, lines
  assert lines[0].startswith("run.py: ")
  assert re.search(message, lines[0]), lines[0]
  assert not workdir.exists(), "bad input must stop before any work"


def test_missing_data_files_are_named_with_instructions(tmp_path):
  proc = _run("--config=configs/mosi.py:smoke", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"run.py: {tmp_path}/tfds/downloads/manual/unaligned_50.pkl: no such")
  assert "MOSI/Processed/unaligned_50.pkl" in last


def test_benchmark_mode_needs_no_workdir():
  proc = _run("--config=configs/mosi.py:smoke", "--mode=benchmark",
              "--config.club.refresh_latents=True")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "refresh_latents True" in proc.stdout and "steps/s" in proc.stdout
  assert "examples/s" in proc.stdout and "peak" in proc.stdout


def test_missing_workdir_is_named():
  proc = subprocess.run([sys.executable, str(REPO / "run.py"), "--config=configs/mosi.py"],
                        cwd=REPO, capture_output=True, text=True, timeout=120,
                        env={**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"})
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == ["run.py: --mode=train needs --workdir"]
