"""Mixed precision: `model.dtype=bfloat16` computes in bf16 while params, optimiser state,
estimator statistics, losses and metrics stay float32, trains, and stays within a stated
tolerance of the float32 step from the same state on the same batches."""

import jax
import numpy as np
import pytest

from mird_jax.runs import experiment
from smoke import smoke_config

STEPS = 3
# bf16 keeps 8 bits of mantissa: after 3 steps from the same state, the smoke model's
# predictions agree with float32's to within this fraction of their spread.
PREDICTION_TOLERANCE = 0.1


@pytest.fixture(name="bf16_exp", scope="module")
def _bf16_exp(tmp_path_factory, smoke_exp):
  config = smoke_config()
  config.model.dtype = "bfloat16"
  return experiment.build(config, tmp_path_factory.mktemp("bf16"), mesh=smoke_exp.mesh)


def _run(exp, state, batches):
  state = jax.device_put(state, exp.replicated)
  history = []
  for batch, unlabeled in batches:
    state, metrics = exp.train_step(state, exp.to_device(batch), exp.to_device(unlabeled))
    history.append(jax.device_get(metrics))
  return jax.device_get(state), history


def test_bfloat16_trains_in_float32_state_close_to_float32(smoke_exp, smoke_start, bf16_exp):
  state, _, _ = smoke_start  # float32 params: the same tree for both compute dtypes.
  train = smoke_exp.streams.train.iterator(0)
  unlabeled = smoke_exp.streams.unlabeled.iterator(0)
  batches = [(next(train), next(unlabeled))] * STEPS  # One batch: learning shows at once.
  f32_state, f32_history = _run(smoke_exp, state, batches)
  bf16_state, bf16_history = _run(bf16_exp, state, batches)
  for leaf in jax.tree.leaves((bf16_state.params, bf16_state.opt_main, bf16_state.opt_club)):
    assert leaf.dtype in (np.float32, np.int32), leaf.dtype
  for metrics in bf16_history:
    assert all(v.dtype == np.float32 and np.isfinite(v) for v in metrics.values())
  # The same losses to bf16 precision at the first step (same params, batch, dropout).
  for k in ("loss/task", "loss/recon/audio", "loss/recon/vision", "loss/mi/s_a"):
    np.testing.assert_allclose(bf16_history[0][k], f32_history[0][k], rtol=0.05, atol=0.02,
                               err_msg=k)
  # It learns: the params after the steps, rescored under the first step's dropout key,
  # have a lower loss on that batch.
  _, (rescored,) = _run(bf16_exp, bf16_state.replace(step=np.zeros((), np.int32)),
                        batches[:1])
  print("bf16 task loss", bf16_history[0]["loss/task"], "->", rescored["loss/task"])
  assert rescored["loss/task"] < bf16_history[0]["loss/task"]
  assert rescored["loss"] < bf16_history[0]["loss"]
  valid = next(smoke_exp.streams.eval("valid"))
  preds = [np.asarray(exp.eval_step(s.params, exp.to_device(valid)))
           for exp, s in ((smoke_exp, f32_state), (bf16_exp, bf16_state))]
  assert preds[1].dtype == np.float32
  gap = np.max(np.abs(preds[1] - preds[0])) / np.std(preds[0])
  print(f"bf16 vs float32 after {STEPS} steps: max |difference| / std = {gap:.4f}")
  assert gap < PREDICTION_TOLERANCE, gap
