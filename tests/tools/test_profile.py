"""--mode=profile: the train step's time attributed to the model's components."""

import os
import pathlib
import subprocess
import sys

import pytest


REPO = pathlib.Path(__file__).resolve().parents[2]


def _run(*args, cwd=REPO):
  return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd,
                        env=dict(os.environ), capture_output=True, text=True, timeout=300)


def test_profile_attributes_the_smoke_step(smoke_exp):
  """Every MIRD component shows up with time of its own; every matmul the program runs is
  seen by the trace, once per loop iteration (the traced FLOPs equal the HLO's count)."""
  from mird_jax.tools import benchmark  # pylint: disable=g-import-not-at-top
  from mird_jax.tools import flops  # pylint: disable=g-import-not-at-top
  from mird_jax.tools import profile  # pylint: disable=g-import-not-at-top
  # The benchmark above compiled the same program: this compile is a cache hit.
  compiled, state, batch, unlabeled, _ = benchmark.compile_step(smoke_exp.config,
                                                                smoke_exp.mesh)
  result = profile.profile(compiled, state, batch, unlabeled, steps=1)
  components = {c for c, _ in result["ms"]}
  for name in ("BERT_l (text)", "BERT_s (agnostic)", "WSA fusion", "audio encoder",
               "vision encoder", "text LSTM decoder", "audio LSTM decoder",
               "vision LSTM decoder", "losses", "optimiser update", "estimator updates",
               "dropout random bits"):
    assert name in components and sum(
        ms for (c, _), ms in result["ms"].items() if c == name) > 0, name
  assert result["ms"][("BERT_l (text)", "backward")] > 0
  total = sum(result["ms"].values())
  assert sum(ms for (c, _), ms in result["ms"].items()
             if c == profile.OTHER) < 0.25 * total
  assert sum(result["matmul_flops"].values()) == pytest.approx(
      flops.matmul_flops(compiled.as_text()), rel=1e-9)
  text = profile.text(result, "smoke")
  assert "| BERT_l (text) |" in text and "matmul GFLOP/s" in text
  assert 0 < result["wall_ms"] < float("inf")
