"""An LSTM cell with torch.nn.LSTMCell's parameters (`model.lstm_cell=torch`).

Flax's cells keep one bias per gate; torch keeps two, `bias_ih` and `bias_hh`, which get
the same gradient. Adam moves each by its own step, so the summed bias of a torch LSTM
moves twice as far per update as Flax's single one: the same forward, a different
training. This cell has torch's two biases (and its [4H] gate order i, f, g, o), so a
step matches the public code's and public weights map one to one.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


class TorchLSTMCell(nn.RNNCellBase):
  features: int
  kernel_init: Callable = nn.initializers.lecun_normal()
  recurrent_kernel_init: Callable = nn.initializers.orthogonal()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, carry, x_BxD):
    c_BxH, h_BxH = carry
    dense = lambda init, name: nn.Dense(4 * self.features, kernel_init=init,
                                        bias_init=self.bias_init, dtype=self.dtype,
                                        param_dtype=self.param_dtype, name=name)
    gates = dense(self.kernel_init, "ih")(x_BxD) + dense(self.recurrent_kernel_init, "hh")(h_BxH)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c_BxH = jax.nn.sigmoid(f) * c_BxH + jax.nn.sigmoid(i) * jnp.tanh(g)
    h_BxH = jax.nn.sigmoid(o) * jnp.tanh(c_BxH)
    return (c_BxH, h_BxH), h_BxH

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    zeros = jnp.zeros((*input_shape[:-1], self.features), self.param_dtype)
    return zeros, zeros

  @property
  def num_feature_axes(self) -> int:
    return 1
