"""Matmul FLOPs from a compiled program's HLO text, counted per loop iteration."""


import jax
import jax.numpy as jnp

from mird_jax.tools import flops


def _hlo(fn, *args):
  return jax.jit(fn).lower(*args).compile().as_text()


def test_matmul_flops_count_loop_bodies_per_iteration():
  a = jnp.ones((32, 32))
  one = 2 * 32 ** 3
  assert flops.matmul_flops(_hlo(lambda x: x @ x, a)) == one
  # XLA's own cost analysis counts a loop's body once: the reason for this counter.
  loop = lambda x: jax.lax.fori_loop(0, 10, lambda i, y: jnp.tanh(y @ x), x)
  assert flops.matmul_flops(_hlo(loop, a)) == 10 * one
  # Nested loops multiply; a scan carrying many values (a tuple shape with /*index=5*/
  # comments in the HLO text, as the LSTMs' loops have) is parsed too.
  def nested(x):
    def outer(c, _):
      inner = lambda y, _: (jnp.tanh(y @ x), None)
      return jax.lax.scan(inner, c, None, length=3)[0], None
    return jax.lax.scan(outer, x, None, length=4)[0]
  assert flops.matmul_flops(_hlo(nested, a)) == 12 * one
  def wide(x):
    def body(c, _):
      return tuple(jnp.tanh(v @ x) for v in c), None
    return jax.lax.scan(body, (x,) * 7, None, length=5)[0]
  assert flops.matmul_flops(_hlo(wide, a)) == 35 * one


def test_matmul_flops_of_dots_and_convolutions_match_the_formulas():
  x, w = jnp.ones((4, 6, 8)), jnp.ones((8, 5))
  assert flops.matmul_flops(_hlo(lambda x, w: jnp.einsum("btd,de->bte", x, w), x, w)) == (
      2 * 4 * 6 * 8 * 5)
  # Conv1d, kernel 3, 8 -> 5 channels, length 10 'SAME': 2 * B * L * out * (3 * in).
  frames, kernel = jnp.ones((2, 10, 8)), jnp.ones((3, 8, 5))
  conv = lambda f, k: jax.lax.conv_general_dilated(f, k, (1,), "SAME",
                                                   dimension_numbers=("NWC", "WIO", "NWC"))
  assert flops.matmul_flops(_hlo(conv, frames, kernel)) == 2 * 2 * 10 * 5 * 3 * 8
