"""The per-example diagnostic rows and the split-level terms built from them."""


import jax
import numpy as np
import pytest

import reference
from mird_jax.models import mird as model_lib
from mird_jax.training import diagnostics
from mird_jax.training import step as step_lib




def test_diagnostic_rows_are_wired_to_the_model(smoke_exp, smoke_start):
  """The per-example rows carry the eval step's predictions and, for every pair, the
  estimator's (mu, logvar) of that pair's conditioning latent (no new compile: both steps
  are the session's)."""
  state, batch, _ = smoke_start
  exp = smoke_exp
  device_batch = exp.to_device(batch)
  rows = jax.device_get(exp.rows_step(state.params, device_batch))
  np.testing.assert_allclose(rows["pred"], jax.device_get(exp.eval_step(state.params,
                                                                        device_batch)),
                             rtol=1e-5, atol=1e-6)
  latents = {k: rows[k] for k in model_lib.MIRD.LATENTS}
  stats_ = exp.model.apply({"params": state.params}, latents,
                           method=model_lib.MIRD.club_stats)
  assert len(stats_) == 6
  for (x, y), (mu, logvar) in stats_.items():
    np.testing.assert_allclose(rows[f"club_mu/{x}_{y}"], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[f"club_logvar/{x}_{y}"], logvar, rtol=1e-5, atol=1e-6)
  n = len(batch["label"])
  assert all(len(rows[f"recon/{m}/count"]) == n for m in ("text", "audio", "vision"))
  np.testing.assert_array_equal(rows["recon/audio/count"], batch["audio_len"])


def test_split_terms_pool_the_whole_split():
  """Masked means over every real frame of the split (not a mean of per-example means),
  the CLUB terms on all latents at once, and the configured combination of the terms."""
  rng = np.random.default_rng(0)
  n, d = 6, 3
  rows = {"pred": rng.normal(size=n), **{f"z_{k}": rng.normal(size=(n, d)) for k in "slav"},
          "recon/audio/sum": np.array([1.0, 2.0, 0.0, 4.0, 1.0, 1.0]),
          "recon/audio/count": np.array([1.0, 4.0, 0.0, 2.0, 1.0, 2.0])}
  for x, y in (("s", "a"), ("l", "v")):
    rows[f"club_mu/{x}_{y}"] = rng.normal(size=(n, d))
    rows[f"club_logvar/{x}_{y}"] = rng.uniform(-1, 1, size=(n, d))
  labels = rng.normal(size=n)
  cfg = step_lib.StepConfig(task="mse", combine="log", log_eps=1e-8,
                            terms=("task", "recon/audio", "mi/s_a"), constraint="mim",
                            estimators=True, club_steps=1, refresh_latents=False,
                            text_target="vocab_logits", kl_reduce="mean", accumulate=1,
                            scale_free=False)
  h = {"w/task": 1.0, "w/recon_audio": 2.0, "w/mi": 0.5}
  got = diagnostics.split_terms(rows, labels, cfg, h)
  assert got["recon/audio"] == pytest.approx(9.0 / 10.0)
  assert got["task"] == pytest.approx(np.mean((rows["pred"] - labels) ** 2))
  pairwise = reference.club_upper_bound_pairwise(rows["club_mu/s_a"], rows["club_logvar/s_a"],
                                              rows["z_a"])
  assert got["mi/s_a"] == pytest.approx(float(pairwise), rel=1e-5)
  assert "mi/l_v" in got and "mi/s_v" not in got and "club_loglik/s_a" in got
  assert got["orthogonal/s_l"] == pytest.approx(float(np.sum((rows["z_s"].T @ rows["z_l"] /
                                                               n) ** 2)), rel=1e-5)
  want = (np.log(got["task"] + 1e-8) + 2.0 * np.log(got["recon/audio"] + 1e-8)
          + 0.5 * got["mi/s_a"])
  assert got["loss"] == pytest.approx(want, rel=1e-5)
