"""The jitted train step: which params each update may move, data parallelism, golden values."""

import functools

import flax
import jax
import numpy as np
import pytest

from configs import demo
from data_pipelines import input_pipeline
from data_pipelines import tfds_builders
from mird_jax import model as model_lib
from mird_jax import parallel
from mird_jax import step as step_lib


@pytest.fixture(name="data", scope="module")
def _data(tmp_path_factory):
  config = demo.get_config("smoke")
  sources = tfds_builders.prepare(config, tmp_path_factory.mktemp("step"))
  streams = input_pipeline.Streams(config, sources, parallel.make_mesh())
  return next(streams.train.iterator(0)), next(streams.unlabeled.iterator(0))


def _one_step(config, data, devices=None):
  """(initial params, params after one step, metrics) on a mesh over `devices`."""
  mesh = parallel.make_mesh(devices)
  mdl = model_lib.MIRD(model_lib.ModelSpec.from_config(config))
  params = model_lib.init_params(mdl, jax.random.key(0))
  fn, tx_main, tx_club = step_lib.jit_train_step(config, mdl, mesh, params, 10, donate=False)
  state = jax.device_put(step_lib.create_state(params, tx_main, tx_club, config.optim.groups),
                         parallel.replicated(mesh))
  batch, unlabeled = (parallel.to_global(d, mesh) for d in data)
  new_state, metrics = fn(state, batch, unlabeled)
  return params, jax.device_get(new_state.params), jax.device_get(metrics)


def _flat(params):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")


def _moved(before, after):
  a, b = _flat(before), _flat(after)
  return {k: not np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a}


@pytest.fixture(name="default_step", scope="module")
def _default_step(data):
  config = demo.get_config("smoke")
  config.optim.warmup_frac = 0.0  # A non-zero learning rate at step 0.
  return _one_step(config, data)


def test_one_step_moves_every_trainable_leaf(default_step):
  before, after, metrics = default_step
  moved = _moved(before, after)
  assert all(moved.values()), [k for k, v in moved.items() if not v]
  for term in ("loss/task", "loss/recon/text", "loss/recon/audio", "loss/recon/vision",
               "loss/mi/s_v", "club_nll", "grad_norm"):
    assert np.isfinite(metrics[term]), term


def test_golden_losses_of_one_smoke_step(default_step):
  _, _, metrics = default_step
  golden = {"loss/task": GOLDEN_TASK, "loss/recon/text": GOLDEN_TEXT}
  for k, v in golden.items():
    assert metrics[k] == pytest.approx(v, rel=1e-4), (
        f"{k} = {metrics[k]!r} differs from its golden value {v!r}. If you changed the model, "
        "losses, initialisation, RNG folding or the synthetic data on purpose, update "
        "GOLDEN_* in tests/test_train_step.py with the new values and say why in the commit.")


def test_zero_estimator_steps_leave_estimators_bit_identical(data):
  config = demo.get_config("smoke")
  config.club.steps = 0
  config.optim.warmup_frac = 0.0
  before, after, metrics = _one_step(config, data)
  moved = _moved(before, after)
  assert not any(v for k, v in moved.items() if k.startswith("club_"))
  assert all(v for k, v in moved.items() if not k.startswith("club_"))
  assert "club_nll" not in metrics


def test_main_params_do_not_move_when_only_the_estimator_loss_is_nonzero(data):
  config = demo.get_config("smoke")
  for w in ("w_task", "w_recon_text", "w_recon_audio", "w_recon_vision", "w_mi"):
    setattr(config.loss, w, 0.0)
  config.optim.weight_decay = 0.0  # Decay alone would move them.
  config.optim.warmup_frac = 0.0
  before, after, metrics = _one_step(config, data)
  moved = _moved(before, after)
  assert not any(v for k, v in moved.items() if not k.startswith("club_"))
  assert all(v for k, v in moved.items() if k.startswith("club_"))
  assert metrics["loss"] == 0.0 and np.isfinite(metrics["club_nll"])


def test_eight_devices_match_one(default_step, data):
  config = demo.get_config("smoke")
  config.optim.warmup_frac = 0.0
  _, one, m1 = _one_step(config, data, jax.devices()[:1])
  _, eight, m8 = default_step
  assert len(jax.devices()) == 8
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5), eight, one)
  assert m8["loss"] == pytest.approx(m1["loss"], rel=1e-5)


# Losses of the first smoke step (demo.py:smoke, synthetic seed 0, training seed 0).
GOLDEN_TASK = 2.769392728805542
GOLDEN_TEXT = 6.237656593322754
