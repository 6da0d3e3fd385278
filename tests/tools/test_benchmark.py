"""--mode=benchmark: compile time, throughput and memory of the train step, on one device
count and swept over several (subprocesses inherit the suite's environment)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from mird_jax import config_check
from smoke import smoke_config

REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(*args, cwd=REPO):
  return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd,
                        env=dict(os.environ), capture_output=True, text=True, timeout=300)


def test_benchmark_reports_compile_time_and_throughput(smoke_exp):
  from mird_jax.tools import benchmark  # pylint: disable=g-import-not-at-top
  record = json.loads(json.dumps(benchmark.measure(smoke_exp.config, mesh=smoke_exp.mesh,
                                                   repeats=3, warmup=1)))
  assert record["devices"] == 1 and record["dtype"] == "float32" and record["steps_timed"] == 3
  assert record["examples_per_s"] == pytest.approx(16 / (record["step_ms"] / 1e3))
  assert record["compile_s"] >= 0 and record["peak_memory_mib"] > 0 and record["temp_mib"] > 0
  text = benchmark.text(record)
  assert "club.steps 2, refresh_latents False, float32" in text
  assert "batch 8 labelled + 8 unlabelled:" in text and record["accumulate_steps"] == 1
  assert "in 2 microbatches:" in benchmark.text({**record, "accumulate_steps": 2})
  for what in ("compile", "median step", "steps/s", "examples/s", "peak", "XLA temporaries",
               "matmul FLOPs", "GFLOP/s", "% of a float32 matmul's"):
    assert what in text, text
  # FLOP/s: the step's matmul FLOPs (loops per iteration) over its median time, held
  # against a matmul's measured in the same run.
  assert record["matmul_flops"] > 0 and record["peak_flops_per_s"] > 0
  assert record["flops_per_s"] == pytest.approx(record["matmul_flops"] / record["step_ms"] * 1e3)
  assert record["peak_share"] == pytest.approx(record["flops_per_s"] / record["peak_flops_per_s"])


def test_benchmark_sweeps_device_counts_and_dtypes(monkeypatch):
  """--devices: one measurement per (device count, dtype) on the first N devices, on copies
  of the config; a count beyond the devices is one line. (measure() itself is timed by the
  test above; here it is replaced, so nothing compiles.)"""
  from mird_jax.tools import benchmark  # pylint: disable=g-import-not-at-top
  seen = []
  monkeypatch.setattr(benchmark, "measure", lambda config, *, mesh, **kw: seen.append(
      (mesh.devices.size, config.model.dtype, kw)) or {})
  config = smoke_config()
  assert len(benchmark.sweep(config, [1, 2, 8], repeats=2)) == 6
  assert [s[:2] for s in seen] == [(1, "float32"), (1, "bfloat16"), (2, "float32"),
                                   (2, "bfloat16"), (8, "float32"), (8, "bfloat16")]
  assert all(s[2] == {"repeats": 2} for s in seen)
  assert config.model.dtype == "float32"  # The sweep changes copies only.
  with pytest.raises(config_check.ConfigError, match="asks for 9 devices; this process has 8"):
    benchmark.sweep(config, [9])
  with pytest.raises(config_check.ConfigError, match="data.batch_size=8 must be a positive "
                                                     "multiple of the device count \\(3\\)"):
    benchmark.sweep(config, [3])
