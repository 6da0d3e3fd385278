"""The torch-layout LSTM cell (`model.lstm_cell=torch`): Flax's cell's forward with its bias
split in two, and the reason it exists: Adam moves the two biases separately, so the summed
bias moves twice as far per update as Flax's single one."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mird_jax.models import torch_lstm

H, D, B = 3, 2, 4


def _flax_from_torch(p):
  """Our TorchLSTMCell params -> Flax's OptimizedLSTMCell params (biases summed)."""
  out = {}
  for k, gate in enumerate("ifgo"):
    rows = slice(k * H, (k + 1) * H)
    out[f"i{gate}"] = {"kernel": p["ih"]["kernel"][:, rows]}
    out[f"h{gate}"] = {"kernel": p["hh"]["kernel"][:, rows],
                       "bias": p["ih"]["bias"][rows] + p["hh"]["bias"][rows]}
  return out


def test_forward_equals_flax_cell_with_the_summed_bias():
  x = jax.random.normal(jax.random.key(0), (B, D))
  carry = tuple(jax.random.normal(jax.random.key(i), (B, H)) for i in (1, 2))
  cell = torch_lstm.TorchLSTMCell(H, bias_init=nn.initializers.normal(1.0))
  p = cell.init(jax.random.key(3), carry, x)["params"]
  assert p["ih"]["kernel"].shape == (D, 4 * H) and p["hh"]["bias"].shape == (4 * H,)
  (c, h), out = cell.apply({"params": p}, carry, x)
  (c2, h2), _ = nn.OptimizedLSTMCell(H).apply({"params": _flax_from_torch(p)}, carry, x)
  np.testing.assert_allclose(c, c2, atol=1e-6)
  np.testing.assert_allclose(h, h2, atol=1e-6)
  np.testing.assert_array_equal(h, out)
  assert cell.initialize_carry(jax.random.key(0), (B, D))[0].shape == (B, H)


def test_one_adam_step_moves_the_summed_bias_twice_as_far():
  x = jax.random.normal(jax.random.key(0), (B, D))
  carry = (jnp.zeros((B, H)), jnp.zeros((B, H)))
  cell = torch_lstm.TorchLSTMCell(H)
  p = cell.init(jax.random.key(3), carry, x)["params"]
  loss_t = lambda q: jnp.sum(cell.apply({"params": q}, carry, x)[1] ** 2) + 0.3
  flax_p = _flax_from_torch(p)
  loss_f = lambda q: jnp.sum(nn.OptimizedLSTMCell(H).apply({"params": q}, carry, x)[1] ** 2)
  tx = optax.adam(1e-2)
  move_t = tx.update(jax.jit(jax.grad(loss_t))(p), tx.init(p))[0]
  move_f = tx.update(jax.jit(jax.grad(loss_f))(flax_p), tx.init(flax_p))[0]
  summed = move_t["ih"]["bias"] + move_t["hh"]["bias"]
  single = jnp.concatenate([move_f[f"h{g}"]["bias"] for g in "ifgo"])
  nonzero = jnp.abs(single) > 1e-4
  assert int(nonzero.sum()) >= H
  np.testing.assert_allclose(summed[nonzero], 2 * single[nonzero], rtol=1e-3)
