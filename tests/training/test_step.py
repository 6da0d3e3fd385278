"""The jitted train step learns, in the right direction, and moves only what it may.

Every test here fails if a gradient path is cut or reversed: the task loss, the
reconstructions, the MI penalty (the main update must lower the CLUB bound) and the
estimators' fit (their NLL must fall). The losses are compared at the same batch and the
same dropout key (a step's loss is computed before its update, so re-running a step from
later params with the step counter set back to 0 scores them under step 0's key).
"""


import flax
import jax
import numpy as np
import pytest

from mird_jax.runs import experiment
import smoke
from smoke import smoke_config

FIXED_BATCH_STEPS = 12


def _flat(params):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")


def _moved(before, after):
  a, b = _flat(before), _flat(after)
  return {k: not np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a}


def _steps(fn, replicated, state, batch, unlabeled, n):
  """n steps of `fn` on one fixed batch from a host `state`; (host state, [host metrics])."""
  state = jax.device_put(state, replicated)
  history = []
  for _ in range(n):
    state, m = fn(state, batch, unlabeled)
    history.append({k: float(v) for k, v in jax.device_get(m).items()})
  return jax.device_get(state), history


def _losses_at_step0_key(fn, replicated, state, batch, unlabeled):
  """The step's loss terms for `state`'s params under step 0's dropout key."""
  _, (metrics,) = _steps(fn, replicated, state.replace(step=np.zeros((), np.int32)), batch,
                         unlabeled, 1)
  return metrics


@pytest.fixture(name="fixed", scope="module")
def _fixed(smoke_exp, smoke_start):
  """FIXED_BATCH_STEPS default steps on one batch: (start, end state, per-step metrics,
  losses of the end params under step 0's key)."""
  state, batch, unlabeled = smoke_start
  b, u = smoke_exp.to_device(batch), smoke_exp.to_device(unlabeled)
  end, history = _steps(smoke_exp.train_step, smoke_exp.replicated, state, b, u,
                        FIXED_BATCH_STEPS)
  rescored = _losses_at_step0_key(smoke_exp.train_step, smoke_exp.replicated, end, b, u)
  return state, end, history, rescored


def _table(before: dict, after: dict, keys) -> str:
  return "; ".join(f"{k}: {before[k]:.5f} -> {after[k]:.5f}" for k in keys)


def test_a_few_steps_on_one_batch_lower_the_task_total_and_reconstruction_losses(fixed):
  _, _, history, rescored = fixed
  first = history[0]
  keys = ("loss", "loss/task", "loss/recon/text", "loss/recon/audio", "loss/recon/vision")
  table = f"after {FIXED_BATCH_STEPS} steps, " + _table(first, rescored, keys)
  # Overfitting one batch: the task loss must fall by a clear margin, not by noise.
  assert rescored["loss/task"] < 0.6 * first["loss/task"], table
  assert rescored["loss"] < first["loss"] - 1.0, table
  for k in ("loss/recon/text", "loss/recon/audio", "loss/recon/vision"):
    assert rescored[k] < first[k], table


def test_estimator_nll_falls_across_its_updates_in_every_step(fixed):
  _, _, history, _ = fixed
  for i, m in enumerate(history):
    assert m["club_nll"] < m["club_nll/start"], (
        f"step {i}: estimator NLL {m['club_nll/start']:.5f} before its updates, "
        f"{m['club_nll']:.5f} after")


def test_one_step_moves_every_trainable_leaf(smoke_exp, smoke_start):
  state, batch, unlabeled = smoke_start
  after, (metrics,) = _steps(smoke_exp.train_step, smoke_exp.replicated, state,
                             smoke_exp.to_device(batch), smoke_exp.to_device(unlabeled), 1)
  moved = _moved(state.params, after.params)
  assert all(moved.values()), [k for k, v in moved.items() if not v]
  for term in ("loss/task", "loss/recon/text", "loss/recon/audio", "loss/recon/vision",
               "loss/mi/s_v", "club_nll", "club_nll/start", "grad_norm"):
    assert np.isfinite(metrics[term]), term


def test_golden_values_of_one_step(fixed):
  _, _, history, _ = fixed
  first = history[0]
  golden = {k: first[k] for k in GOLDEN if k in first}
  _, end, _, _ = fixed
  golden["end_param_norm"] = float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64)))
                                               for x in jax.tree.leaves(end.params))))
  for k, v in GOLDEN.items():
    assert golden[k] == pytest.approx(v, rel=1e-4), (
        f"{k} = {golden[k]!r} differs from its golden value {v!r}. If you changed the model, "
        "losses, optimiser, initialisation, RNG folding or the synthetic data on purpose, "
        f"replace GOLDEN in tests/training/test_step.py with these values and say why in the "
        f"commit: {golden}")


def _with_hparams(state, **values):
  """`state` with some run-time hyper-parameters replaced (same compiled step)."""
  h = dict(state.hparams)
  for k, v in values.items():
    assert k in h, k
    h[k] = np.float32(v)
  return state.replace(hparams=h)


MAIN_WEIGHTS = ("w/task", "w/recon_text", "w/recon_audio", "w/recon_vision", "w/mi")


def _only(state, **weights):
  """Only the given loss weights non-zero, and no weight decay (which alone moves params)."""
  values = {k: weights.get(k.replace("/", "_"), 0.0) for k in MAIN_WEIGHTS}
  return _with_hparams(state, weight_decay=0.0, **values)


def test_mi_terms_alone_move_the_encoders_so_as_to_lower_the_club_bound(smoke_exp, smoke_start):
  state, batch, unlabeled = smoke_start
  state = _only(state, w_mi=1.0)
  b, u = smoke_exp.to_device(batch), smoke_exp.to_device(unlabeled)
  after, (first,) = _steps(smoke_exp.train_step, smoke_exp.replicated, state, b, u, 1)
  moved = _moved(state.params, after.params)
  # Everything that makes a latent moves; the regressor and decoders get no MI gradient.
  assert {k for k, v in moved.items() if v and not k.startswith("club_")} == {
      k for k in moved if not k.startswith(("club_", "reg_", "dec_"))}
  # The bound on the same batch, dropout and estimators, before and after the update.
  estimators = {k: v for k, v in state.params.items() if k.startswith("club_")}
  rescored = _losses_at_step0_key(smoke_exp.train_step, smoke_exp.replicated,
                                  after.replace(params={**after.params, **estimators}), b, u)
  mi = sorted(k for k in first if k.startswith("loss/mi/"))
  assert len(mi) == 6
  assert rescored["loss"] < first["loss"] - 1e-3, _table(first, rescored, ["loss"] + mi)


def test_the_estimator_loss_alone_moves_only_the_estimators_and_fits_them(smoke_exp,
                                                                          smoke_start):
  state, batch, unlabeled = smoke_start
  state = _only(state)
  after, (metrics,) = _steps(smoke_exp.train_step, smoke_exp.replicated, state,
                             smoke_exp.to_device(batch), smoke_exp.to_device(unlabeled), 1)
  moved = _moved(state.params, after.params)
  assert not any(v for k, v in moved.items() if not k.startswith("club_"))
  assert all(v for k, v in moved.items() if k.startswith("club_"))
  assert metrics["loss"] == 0.0
  assert metrics["club_nll"] < metrics["club_nll/start"], metrics


def test_all_zero_frames_give_finite_gradients(smoke_exp, smoke_start):
  """All-zero audio and vision frames make the WSA shift exactly 0 at init: its norm must
  not turn the gradient into NaN."""
  state, batch, unlabeled = smoke_start
  zeroed = [dict(x, audio=np.zeros_like(x["audio"]), vision=np.zeros_like(x["vision"]))
            for x in (batch, unlabeled)]
  after, (metrics,) = _steps(smoke_exp.train_step, smoke_exp.replicated, state,
                             *(smoke_exp.to_device(x) for x in zeroed), 1)
  assert np.isfinite(metrics["grad_norm"]) and np.isfinite(metrics["loss"]), metrics
  bad = [k for k, v in _flat(after.params).items() if not np.all(np.isfinite(v))]
  assert not bad, bad


def _mean_predictor_mae(sources):
  train = np.array([float(sources["train"][i]["label"]) for i in range(len(sources["train"]))])
  test = np.array([float(sources["test"][i]["label"]) for i in range(len(sources["test"]))])
  return float(np.mean(np.abs(test - train.mean())))


def test_a_short_training_run_learns_the_synthetic_task(smoke_exp, smoke_start):
  """The whole step over several epochs of the synthetic benchmark: the test Corr must
  clear a floor that a model with its task gradient cut (Corr near 0) cannot."""
  exp = smoke_exp
  state = jax.device_put(smoke_start[0], exp.replicated)
  stream = exp.streams.train
  for epoch in range(exp.config.train.epochs):
    unlabeled = exp.streams.unlabeled.iterator(int(state.step))
    for host_batch in stream.iterator(epoch):
      state, _ = exp.train_step(state, exp.to_device(host_batch),
                                exp.to_device(next(unlabeled)))
  test, _ = experiment.evaluate(exp, state.params, "test")
  baseline = _mean_predictor_mae(exp.streams.sources)
  summary = (f"test Corr {test['Corr']:.3f}, MAE {test['MAE']:.3f}; predicting the train "
             f"mean: MAE {baseline:.3f}")
  assert test["Corr"] > CORR_FLOOR, summary
  assert test["MAE"] < 0.9 * baseline, summary


# A floor well above what the model reaches with its task gradient cut (see the resolve
# note of the issue that added it: Corr ~0.0-0.2 there) and below what it reaches (~0.6).
CORR_FLOOR = 0.45

# One default step of smoke_config() (synthetic seed 0, training seed 0), and the norm of
# all params after FIXED_BATCH_STEPS steps on the first batch.
GOLDEN = {
    "loss": 6.875765323638916,
    "loss/task": 1.4167522192001343,
    "loss/recon/text": 6.242206573486328,
    "grad_norm": 7.889440536499023,
    "club_nll/start": 15.003482818603516,
    "club_nll": 14.341364860534668,
    "end_param_norm": 48.39568328857422,
}


def test_seeds_share_one_compiled_train_step(smoke_exp):
  other = smoke_config()
  other.seed = 9
  fn = smoke.train_step_for(other, smoke_exp.model, smoke_exp.mesh)
  assert fn is smoke_exp.train_step


def test_the_seed_in_the_state_drives_dropout(smoke_exp, smoke_start):
  """The same state and batch under another hparams seed: another dropout draw, so another
  loss; under the same seed, the same loss (one compiled step serves both)."""
  state, batch, unlabeled = smoke_start
  b, u = smoke_exp.to_device(batch), smoke_exp.to_device(unlabeled)

  def loss(seed):
    s = state.replace(hparams={**state.hparams, "seed": np.asarray(seed, np.int32)})
    return float(smoke_exp.train_step(jax.device_put(s, smoke_exp.replicated), b, u)[1]["loss"])
  assert loss(0) == loss(0) != loss(1)
