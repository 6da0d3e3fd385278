"""Optimizer construction: schedule shape, weight-decay mask, group assignment."""

import functools

import jax
import numpy as np
import optax
import pytest

from configs import mosi
from mird_jax.training import optim
from smoke import smoke_config


def test_warmup_then_linear_decay():
  lr = lambda step, warmup: float(optim.learning_rate(step, 1e-3, warmup, 100))
  assert lr(0, 10) == 0.0
  assert lr(5, 10) == pytest.approx(5e-4)
  assert lr(10, 10) == pytest.approx(1e-3)
  assert lr(55, 10) == pytest.approx(5e-4)
  assert lr(100, 10) == pytest.approx(0.0, abs=1e-12)
  assert lr(150, 10) == pytest.approx(0.0, abs=1e-12)
  assert lr(0, 0) == pytest.approx(1e-3) and lr(50, 0) == pytest.approx(5e-4)


def test_hparams_follow_the_config():
  config = mosi.get_config("smoke")
  config.optim.warmup_frac, config.loss.w_mi = 0.25, 0.5
  h = optim.hparams(config, total_steps=40)
  assert float(h["lr/warmup"]) == 10 and float(h["lr/total"]) == 40
  assert float(h["lr/bert/peak"]) == pytest.approx(config.optim.bert_lr)
  assert float(h["w/mi"]) == 0.5 and float(h["weight_decay"]) == pytest.approx(0.01)
  rates = optim.learning_rates(20, h)
  assert float(rates["main"]) == pytest.approx(config.optim.main_lr * 20 / 30)


def test_decay_mask_skips_biases_and_layer_norm_scales():
  params = {"bert_l": {"layers_0": {"output": {"kernel": np.ones((2, 2)), "bias": np.ones(2)},
                                    "output_LayerNorm": {"scale": np.ones(2),
                                                         "bias": np.ones(2)}},
                       "word_embeddings": {"embedding": np.ones((3, 2))}}}
  mask = optim.decay_mask(params)
  layer = mask["bert_l"]["layers_0"]
  assert layer["output"] == {"kernel": True, "bias": False}
  assert layer["output_LayerNorm"] == {"scale": False, "bias": False}
  assert mask["bert_l"]["word_embeddings"]["embedding"] is True


def test_groups_get_their_own_rates_and_estimators_are_frozen_in_the_main_update():
  config = mosi.get_config("smoke")
  config.optim.bert_lr, config.optim.main_lr, config.optim.warmup_frac = 1e-2, 1e-1, 0.0
  params = {"bert_l": {"k": np.ones(2, np.float32)}, "reg_out": {"k": np.ones(2, np.float32),
                                                                  "bias": np.ones(2, np.float32)},
            "club_l_a": {"k": np.ones(2, np.float32)}}
  tx_main, _ = optim.make(optim.Settings.from_config(config), params)
  grads = jax.tree.map(np.ones_like, params)
  directions, _ = tx_main.update(grads, tx_main.init(params), params)
  h = optim.hparams(config, total_steps=10)
  updates = optim.scale(directions, params, 0, h, config.optim.groups)
  # Adam's first direction is the sign of the gradient; decoupled decay adds wd * param,
  # except on biases.
  np.testing.assert_allclose(updates["bert_l"]["k"], -1e-2 * (1 + 0.01), rtol=1e-4)
  np.testing.assert_allclose(updates["reg_out"]["k"], -1e-1 * (1 + 0.01), rtol=1e-4)
  np.testing.assert_allclose(updates["reg_out"]["bias"], -1e-1, rtol=1e-4)
  assert np.all(np.asarray(directions["club_l_a"]["k"]) == 0)
  assert np.all(np.asarray(updates["club_l_a"]["k"]) == 0)
  new = optax.apply_updates(params, updates)
  assert np.array_equal(new["club_l_a"]["k"], params["club_l_a"]["k"])
  # The same as optax.adamw with the same rate on a group.
  ref = optax.adamw(1e-1, b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps,
                    weight_decay=0.01, mask=optim.decay_mask)
  ref_updates, _ = ref.update(grads["reg_out"], ref.init(params["reg_out"]), params["reg_out"])
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5), updates["reg_out"],
               ref_updates)


def test_public_ramp_reaches_the_peak_on_the_last_step_then_zero():
  config = smoke_config()
  config.optim.schedule = "public_ramp"
  total = 7 * 40  # epochs x int(N / B): the loader drops the last partial batch.
  h = optim.hparams(config, total_steps=total)
  lr = lambda step: float(optim.learning_rates(step, h)["main"])
  peak = config.optim.main_lr
  assert lr(0) == 0.0
  assert lr(total // 2) == pytest.approx(peak / 2)
  assert lr(total - 1) == pytest.approx(peak * (total - 1) / total)
  assert lr(total) == 0.0 and lr(total + 5) == 0.0
