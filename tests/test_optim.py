"""Optimizer construction: schedule shape, weight-decay mask, group assignment."""

import numpy as np
import optax
import pytest

from configs import mosi
from mird_jax import optim


def test_warmup_then_linear_decay():
  s = optim.schedule(1e-3, total_steps=100, warmup_frac=0.1)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(5e-4)
  assert float(s(10)) == pytest.approx(1e-3)
  assert float(s(55)) == pytest.approx(5e-4)
  assert float(s(100)) == pytest.approx(0.0, abs=1e-12)
  assert float(optim.schedule(1e-3, 100, 0.0)(0)) == pytest.approx(1e-3)


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
  config.optim.weight_decay = 0.0
  params = {"bert_l": {"k": np.ones(2, np.float32)}, "reg_out": {"k": np.ones(2, np.float32)},
            "club_l_a": {"k": np.ones(2, np.float32)}}
  tx_main, _, _ = optim.make(config, params, 10)
  grads = {k: {"k": np.ones(2, np.float32)} for k in params}
  updates, _ = tx_main.update(grads, tx_main.init(params), params)
  # Adam's first step moves each leaf by -lr (sign of the gradient).
  np.testing.assert_allclose(updates["bert_l"]["k"], -1e-2, rtol=1e-4)
  np.testing.assert_allclose(updates["reg_out"]["k"], -1e-1, rtol=1e-4)
  assert np.all(np.asarray(updates["club_l_a"]["k"]) == 0)
  new = optax.apply_updates(params, updates)
  assert np.array_equal(new["club_l_a"]["k"], params["club_l_a"]["k"])
