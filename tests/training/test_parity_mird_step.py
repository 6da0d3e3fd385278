"""MIRD's training against the public code's own `train_epoch` (tests/data/parity/mird.npz):
each loss term, the gradient of the main loss, and the parameters after each of two
complete train steps (a main AdamW update under the public scheduler, then 5 estimator
Adam updates on post-update latents), under configs/public.py's preset with every dropout
off. Loss terms agree to 1e-5 (relative), gradients to 1e-4 (relative to the largest),
updated parameters to 1e-4 (the updates themselves reach 5e-2)."""

import dataclasses
import functools

import flax
import jax
import numpy as np
import optax
import pytest

from mird_jax.models import factory
from mird_jax.models import public_weights
from mird_jax.training import optim
from mird_jax.training import step as step_lib
import parity

TERMS = ("task", "recon/text", "recon/audio", "recon/vision", "mi/l_a", "mi/l_v", "mi/a_v",
         "mi/s_l", "mi/s_a", "mi/s_v")
PARAM_TOL = 1e-4


@pytest.fixture(scope="module")
def setup():
  d = parity.fixture("mird")
  config = parity.mird_config(d)
  model = factory.build(config)
  template = parity.template(model)
  to_ours = lambda state: public_weights.mird(template, state)
  return d, config, model, to_ours


@pytest.fixture(scope="module")
def two_steps(setup):
  """Our state and metrics after each of the fixture's two steps."""
  d, config, model, to_ours = setup
  settings = optim.Settings.from_config(config)
  tx_main, tx_club = optim.make(settings, to_ours(parity.state(d, "w0")))
  state = step_lib.create_state(to_ours(parity.state(d, "w0")), tx_main, tx_club, settings.groups,
                                optim.hparams(config, total_steps=int(d["optim/steps"])))
  fn = jax.jit(functools.partial(
      step_lib.train_step, model=model, tx_main=tx_main, tx_club=tx_club,
      rules=settings.groups, cfg=step_lib.StepConfig.from_config(config, model),
      decay_updated=settings.adamw == "transformers"))
  out = []
  for i in range(int(d["optim/steps"])):
    state, metrics = fn(state, parity.batch(d, i, "l"), parity.batch(d, i, "u"))
    out.append((parity.flat(state.params), jax.tree.map(np.asarray, metrics),
                _first_moment(state.opt_main)))
  return out


def test_each_loss_term_matches_at_each_step(setup, two_steps):
  d = setup[0]
  for i, (_, metrics, _) in enumerate(two_steps):
    for term in TERMS:
      public = float(d[f"step{i}/loss/{term}"])
      err = abs(float(metrics[f"loss/{term}"]) - public)
      assert err <= 1e-5 * max(1.0, abs(public)), (i, term, float(metrics[f"loss/{term}"]),
                                                   public)
    total = sum(np.log(float(d[f"step{i}/loss/{t}"])) for t in TERMS[:4]) + sum(
        float(d[f"step{i}/loss/{t}"]) for t in TERMS[4:])
    assert abs(float(metrics["loss"]) - total) <= 1e-5 * abs(total)


def _first_moment(opt_main) -> dict[str, np.ndarray]:
  """Adam's first moment in the main optimiser's state, by our param path (each leaf from
  the group that owns it)."""
  out = {}
  for group in ("bert", "main"):
    mu = opt_main.inner_states[group].inner_state.mu
    out.update({k: np.asarray(v) for k, v in flax.traverse_util.flatten_dict(
        flax.core.unfreeze(mu), sep="/").items() if not isinstance(v, optax.MaskedNode)})
  return out


def test_the_main_loss_gradient_matches(setup, two_steps):
  """The gradient the step fed its optimiser: after step 0 Adam's first moment is
  (1 - b1) g, so g comes out of the state without a second compile."""
  d, config = setup[:2]
  ours = {k: v / (1 - config.optim.b1) for k, v in two_steps[0][2].items()}
  public = {k: v for k, v in parity.flat(setup[3](parity.grads(d, 0))).items()
            if not k.startswith("club_")}
  scale = max(float(np.abs(v).max()) for v in public.values())
  parity.assert_close(ours, public, 1e-4 * scale, "main-loss gradient")


def test_params_after_each_public_train_step_match(setup, two_steps):
  d, _, _, to_ours = setup
  for i, (ours, _, _) in enumerate(two_steps):
    public = parity.flat(to_ours(parity.state(d, f"w{i + 1}")))
    before = parity.flat(to_ours(parity.state(d, f"w{i}")))
    moved = max(float(np.abs(public[k] - before[k]).max()) for k in public)
    assert moved > 100 * PARAM_TOL  # The step is far above the tolerance.
    parity.assert_close(ours, public, PARAM_TOL, f"params after step {i}")


def test_the_lr_schedule_is_the_public_schedulers(setup, two_steps):
  d = setup[0]
  for i, (_, metrics, _) in enumerate(two_steps):
    assert abs(float(metrics["lr/main"]) - float(d[f"step{i}/lr"])) < 1e-9


def test_our_defaults_are_not_the_public_step(setup):
  """Each restoring key matters: optax's AdamW on the public gradients misses the public
  update, transformers' form reproduces it (the step-1 main update, lr > 0)."""
  d, config, model, to_ours = setup
  hparams = optim.hparams(config, total_steps=2)
  grads = [to_ours(parity.grads(d, i)) for i in range(2)]
  start, public = to_ours(parity.state(d, "w1")), parity.flat(to_ours(parity.state(d, "w2")))
  main = lambda tree: {k: v for k, v in parity.flat(tree).items() if not k.startswith("club_")}
  errors = {}
  w0 = to_ours(parity.state(d, "w0"))
  for adamw in ("transformers", "optax"):
    settings = dataclasses.replace(optim.Settings.from_config(config), adamw=adamw)
    tx, _ = optim.make(settings, start)

    def two_updates(w0, start, g0, g1, tx=tx, settings=settings):
      _, opt = tx.update(g0, tx.init(w0), w0)
      directions, _ = tx.update(g1, opt, start)
      updates = optim.scale(directions, start, 1, hparams, settings.groups,
                            decay_updated=settings.adamw == "transformers")
      return jax.tree.map(lambda p, u: p + u, start, updates)
    errors[adamw] = parity.worst(main(jax.jit(two_updates)(w0, start, *grads)), main(public))
  assert errors["transformers"][0] <= PARAM_TOL / 10, errors["transformers"]
  assert errors["optax"][0] > PARAM_TOL, errors["optax"]
