"""Two JAX processes on loopback (CPU, gloo): each reads its own share of the global batch,
one data-parallel train step and a gathered evaluation give what one process gives."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from mird_jax import parallel

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "multihost" / "worker.py"


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(tmp_path, n, tag):
  port = _free_port()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
         # Two processes of one device each, or one process of two devices: the same mesh.
         "XLA_FLAGS": (parallel.CPU_MULTIPROCESS_XLA_FLAGS if n > 1
                       else "--xla_force_host_platform_device_count=2")}
  out = tmp_path / tag
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(n), str(i),
                             str(tmp_path / f"{tag}_work{i}"), str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
           for i in range(n)]
  logs = [p.communicate(timeout=600)[0].decode()[-3000:] for p in procs]
  assert all(p.returncode == 0 for p in procs), logs
  return [json.loads((tmp_path / f"{tag}.{i}").read_text()) for i in range(n)]


def test_two_processes_train_like_one(tmp_path):
  (one,) = _launch(tmp_path, 1, "single")
  two = _launch(tmp_path, 2, "multi")
  assert one["devices"] == two[0]["devices"] == 2
  # Each process read half of the global batch, and together exactly the global batch.
  assert not set(two[0]["ids"]) & set(two[1]["ids"])
  assert sorted(two[0]["ids"] + two[1]["ids"]) == one["ids"]
  for rec in two:
    assert rec["loss"] == pytest.approx(one["loss"], rel=1e-5)
    np.testing.assert_allclose(rec["param_sums"], one["param_sums"], rtol=1e-4)
    # Evaluation: every example once, in dataset order, whichever process holds it.
    assert rec["eval_ids"] == one["eval_ids"] and len(rec["eval_ids"]) == 20
    np.testing.assert_allclose(rec["preds"], one["preds"], rtol=1e-4, atol=1e-5)
    for k, v in one["metrics"].items():
      assert rec["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
