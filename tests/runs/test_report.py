"""The per-epoch validation terms: the diagnostic forward over the whole split agrees with
the eval step's predictions (two programs, one answer)."""

import jax
import numpy as np

from mird_jax.runs import experiment
from mird_jax.runs import report


def test_valid_terms_score_the_eval_steps_predictions(smoke_exp, smoke_start):
  state, _, _ = smoke_start
  params = jax.device_put(state.params, smoke_exp.replicated)
  terms = report.valid_terms(smoke_exp, params, "valid")
  preds, labels, _ = experiment.predict(smoke_exp, params, smoke_exp.streams.eval("valid"))
  assert smoke_exp.step_config.task == "mse" and len(labels) == 21
  np.testing.assert_allclose(terms["task"], np.mean((preds - labels) ** 2), rtol=1e-5)
  assert {"recon/text", "recon/audio", "recon/vision", "mi/s_l", "club_loglik/s_l",
          "orthogonal/s_a", "loss"} <= set(terms)
