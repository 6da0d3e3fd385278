"""The text-only regressor: it reads the tokens and nothing else, ignores padding, and a few
steps on a fixed batch fit it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import real
from mird_jax.models import factory
from mird_jax.models import text_regressor
from mird_jax.training import param_groups


@pytest.fixture(name="built", scope="module")
def _built():
  config = real.get_config("utterance,text,smoke")
  model = factory.build(config)
  assert isinstance(model, text_regressor.TextRegressor)
  return config, model, factory.init_params(model, jax.random.key(0))


def _batch(spec, seed=0, b=8):
  rng = np.random.default_rng(seed)
  d = spec.dims
  lengths = rng.integers(3, d.text_len + 1, b)
  mask = (np.arange(d.text_len)[None, :] < lengths[:, None]).astype(np.int32)
  return {"text_ids": (rng.integers(1000, 2000, (b, d.text_len)) * mask).astype(np.int32),
          "text_mask": mask, "text_type": np.zeros((b, d.text_len), np.int32),
          "audio": rng.normal(size=(b, d.audio_len, d.audio_dim)).astype(np.float32),
          "audio_len": np.ones(b, np.int32),
          "vision": rng.normal(size=(b, d.vision_len, d.vision_dim)).astype(np.float32),
          "vision_len": np.ones(b, np.int32)}


def test_it_reads_the_tokens_and_only_the_real_ones(built):
  config, model, params = built
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
  batch = _batch(model.spec)
  pred, aux = apply(params, batch)
  assert pred.shape == (8,) and set(aux) == {"z_l"}
  assert aux["z_l"].shape == (8, config.bert.random.hidden_size)
  noise = dict(batch, audio=batch["audio"] * 9 + 1, vision=-batch["vision"])
  np.testing.assert_array_equal(apply(params, noise)[0], pred)  # Audio, vision unread.
  z = np.asarray(aux["z_l"])
  padded = dict(batch, text_ids=np.where(batch["text_mask"] == 1, batch["text_ids"], 777))
  np.testing.assert_allclose(apply(params, padded)[1]["z_l"], z, atol=1e-6)  # Padding unread.
  changed = dict(batch, text_ids=batch["text_ids"].copy())
  changed["text_ids"][:, 1] = 1500
  moved = np.abs(np.asarray(apply(params, changed)[1]["z_l"]) - z).max(1)
  assert (moved > 1e-4).all(), moved  # Every example reads its tokens (100x the above).


def test_a_few_steps_on_a_fixed_batch_fit_it_and_every_param_has_a_group(built):
  config, model, params = built
  groups = param_groups.label_tree(params, config.optim.groups)
  assert set(jax.tree.leaves(groups)) == {"bert", "main"}
  batch = _batch(model.spec, seed=1)
  y = jnp.asarray(np.random.default_rng(2).normal(size=8), jnp.float32)
  loss = lambda p: jnp.mean((model.apply({"params": p}, batch)[0] - y) ** 2)
  tx = optax.adam(3e-3)

  @jax.jit
  def step(p, s):
    value, grads = jax.value_and_grad(loss)(p)
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s, value

  state, first = tx.init(params), None
  for _ in range(25):
    params, state, value = step(params, state)
    first = value if first is None else first
  assert float(loss(params)) < 0.2 * float(first)
