"""Initialiser schemes for the layers outside BERT and WSA (`model.init_scheme`).

- `flax`: Flax's defaults (lecun-normal kernels, zero biases, orthogonal LSTM recurrences).
- `pytorch`: what the public PyTorch code gets from torch's defaults: every Linear's weight
  and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); every LSTM weight and bias
  U(-1/sqrt(hidden), 1/sqrt(hidden)) (torch adds two such bias vectors per gate: with
  `model.lstm_cell=torch` so do we; Flax's cell has one, so its bias is uniform, not
  triangular).
BERT and WSA layers use N(0, 0.02) weights and zero biases in both schemes, as BERT does.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from mird_jax.models import torch_lstm

SCHEMES = ("flax", "pytorch")


def _check(scheme: str) -> None:
  if scheme not in SCHEMES:
    raise ValueError(f"unknown initialiser scheme {scheme!r}; expected one of {SCHEMES}")


def uniform(bound: float):
  """U(-bound, bound), torch's `reset_parameters` distribution."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def dense(features: int, fan_in: int, scheme: str, dtype, name=None) -> nn.Dense:
  """A Dense layer initialised as `scheme` says (fan_in = its input width)."""
  _check(scheme)
  if scheme == "pytorch":
    u = uniform(1.0 / math.sqrt(fan_in))
    return nn.Dense(features, kernel_init=u, bias_init=u, dtype=dtype, name=name)
  return nn.Dense(features, dtype=dtype, name=name)


CELLS = ("flax", "torch")


def lstm_cell(hidden: int, scheme: str, dtype, name=None, layout: str = "flax"):
  """An LSTM cell: Flax's (`flax`: one bias per gate) or torch.nn.LSTMCell's layout
  (`torch`: an input and a recurrent bias per gate, two parameters that Adam moves
  separately), initialised as `scheme` says."""
  _check(scheme)
  if layout not in CELLS:
    raise ValueError(f"unknown LSTM cell layout {layout!r}; expected one of {CELLS}")
  cls = nn.OptimizedLSTMCell if layout == "flax" else torch_lstm.TorchLSTMCell
  if scheme == "pytorch":
    u = uniform(1.0 / math.sqrt(hidden))
    return cls(hidden, kernel_init=u, recurrent_kernel_init=u, bias_init=u, dtype=dtype,
               name=name)
  return cls(hidden, dtype=dtype, name=name)
