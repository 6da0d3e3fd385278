"""MIB's training against the public MIB.forward, which steps its own two Adam optimisers
(tests/data/parity/mib.npz): each variant's total loss (its fused prediction's L1 counted
twice, `model.mib.fused_task_weight=2`), every bottleneck's beta KL + L1 and the gradient,
and for C-MIB the parameters after the step, under configs/public.py's preset with dropout
off. Losses agree to 1e-5 (relative), the gradient to 1e-4 of its largest element, the
updated parameters to 1e-4 (the updates reach 2e-2)."""

import functools

import jax
import numpy as np
import pytest

from mird_jax.models import factory
from mird_jax.models import public_weights
from mird_jax.training import objective
from mird_jax.training import optim
from mird_jax.training import step as step_lib
import parity


def _model(variant):
  d = parity.fixture("mib")
  config = parity.mib_config(d, variant)
  model = factory.build(config)
  to_ours = lambda state: public_weights.mib(parity.template(model), state, variant,
                                             config.model.mib.heads)
  return d, config, model, to_ours


@pytest.mark.parametrize("variant", ["complete", "early", "late"])
def test_each_variants_losses_and_gradient_match(variant):
  d, config, model, to_ours = _model(variant)
  batch = parity.mib_batch(d)
  cfg = step_lib.StepConfig.from_config(config, model)
  hparams = optim.hparams(config, total_steps=1)
  fn = jax.jit(jax.value_and_grad(lambda p: objective.main_objective(
      p, objective.joint_batch(batch, None), batch["label"], jax.random.key(0), hparams,
      model=model, cfg=cfg), has_aux=True))
  (total, (terms, _)), grads = fn(to_ours(parity.mib_state(d, variant)))
  public_total = float(d[f"{variant}/total_loss"])
  assert abs(float(total) - public_total) <= 1e-5 * public_total, (float(total), public_total)
  beta = float(d["beta"])
  heads = {"complete": "lavf", "early": "f", "late": "lav"}[variant]
  ours = [beta * float(terms[f"kl/{m}"]) + float(terms["task" if m == "f" else f"task/{m}"])
          for m in heads]
  np.testing.assert_allclose(ours, d[f"{variant}/bottleneck_losses"], rtol=1e-5)
  # The gradient the public backward gave its two optimisers (every variant: a stopped or
  # missing path in one variant's code would show here).
  public = parity.flat(to_ours(parity.mib_state(d, variant, "grad")))
  scale = max(float(np.abs(v).max()) for v in public.values())
  parity.assert_close(parity.flat(grads), public, 1e-4 * scale, f"{variant} gradient")


@pytest.fixture(scope="module")
def complete_step():
  d, config, model, to_ours = _model("complete")
  settings = optim.Settings.from_config(config)
  w0 = to_ours(parity.mib_state(d, "complete"))
  tx_main, tx_club = optim.make(settings, w0)
  state = step_lib.create_state(w0, tx_main, tx_club, settings.groups,
                                optim.hparams(config, total_steps=1))
  fn = jax.jit(functools.partial(
      step_lib.train_step, model=model, tx_main=tx_main, tx_club=tx_club,
      rules=settings.groups, cfg=step_lib.StepConfig.from_config(config, model)))
  after, _ = fn(state, parity.mib_batch(d), None)
  return d, config, to_ours, after


def test_c_mib_params_after_the_public_step_match(complete_step):
  """Except the attention key biases (BERT's and the encoders'): softmax is invariant to
  them, so their gradient is 0 but for round-off, which Adam (eps 1e-8) turns into steps
  of +-lr of either sign."""
  d, _, to_ours, after = complete_step
  public = parity.flat(to_ours(parity.mib_state(d, "complete", "w1")))
  before = parity.flat(to_ours(parity.mib_state(d, "complete", "w0")))
  grads = parity.flat(to_ours(parity.mib_state(d, "complete", "grad")))
  noise = [k for k in public if k.endswith(("attn/key/bias", "attention_self/key/bias"))]
  assert noise and all(np.abs(grads[k]).max() < 1e-6 for k in noise)
  assert max(float(np.abs(public[k] - before[k]).max()) for k in public) > 1e-2
  ours = {k: v for k, v in parity.flat(after.params).items() if k not in noise}
  parity.assert_close(ours, {k: v for k, v in public.items() if k not in noise}, 1e-4,
                      "C-MIB params after the step")
