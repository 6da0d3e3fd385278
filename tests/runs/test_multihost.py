"""Two JAX processes of four CPU devices each (gloo on loopback): each reads its own share
of the global batch; one data-parallel train step over the 8 devices and a gathered
evaluation give what this process gives on one device (the session's smoke experiment)."""

import json
import os
import pathlib
import pickle
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from mird_jax.runs import experiment
from mird_jax.training import sharding

REPO = pathlib.Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "runs" / "multihost" / "worker.py"
DEVICES_PER_PROCESS = 4


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(tmp_path, state, data_dirs, n=2):
  state_file = tmp_path / "state.pkl"
  state_file.write_bytes(pickle.dumps(state))
  port = _free_port()
  xla_flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                       if "device_count" not in f)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
         "XLA_FLAGS": (f"{xla_flags} {sharding.CPU_MULTIPROCESS_XLA_FLAGS} "
                       f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}")}
  out = tmp_path / "record"
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(n), str(i),
                             str(tmp_path / f"work{i}"), str(state_file), str(out),
                             data_dirs], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
           for i in range(n)]
  logs = [p.communicate(timeout=600)[0].decode()[-3000:] for p in procs]
  assert all(p.returncode == 0 for p in procs), logs
  return [json.loads((tmp_path / f"record.{i}").read_text()) for i in range(n)]


def test_two_processes_of_four_devices_train_like_one_device(tmp_path, smoke_exp, smoke_start):
  state, batch, unlabeled = smoke_start
  manual = smoke_exp.manual_dir
  two = _launch(tmp_path, state, f"{manual},{manual.parent / 'tfds'}")
  # The reference: one device, one process, the same state, batch, dropout and data.
  after, metrics = smoke_exp.train_step(jax.device_put(state, smoke_exp.replicated),
                                        smoke_exp.to_device(batch),
                                        smoke_exp.to_device(unlabeled))
  result, (preds, _, ids) = experiment.evaluate(smoke_exp, after.params, "valid")
  param_sums = [float(np.abs(np.asarray(x)).sum()) for x in jax.tree.leaves(after.params)]
  assert two[0]["devices"] == 2 * DEVICES_PER_PROCESS
  # Each process read half of the global batch, and together exactly the global batch.
  assert not set(two[0]["ids"]) & set(two[1]["ids"])
  assert sorted(two[0]["ids"] + two[1]["ids"]) == sorted(map(str, batch["id"]))
  for rec in two:
    assert rec["loss"] == pytest.approx(float(metrics["loss"]), rel=1e-5)
    # atol: attention key biases have an exactly-zero gradient in exact arithmetic (softmax
    # and sparsemax ignore a shift shared by all scores), so Adam moves them by float noise.
    np.testing.assert_allclose(rec["param_sums"], param_sums, rtol=1e-4, atol=1e-3)
    # Evaluation: every example once, in dataset order, whichever process holds it.
    assert rec["eval_ids"] == ids and len(ids) == 21
    np.testing.assert_allclose(rec["preds"], preds, rtol=1e-4, atol=1e-5)
    for k, v in result.items():
      assert rec["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
