"""Measuring tools: matmul FLOPs counted per loop iteration, and huge pages for run.py.
(The profile of the train step is tested in test_run.py, beside the benchmark, which
compiles the same program.)"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from mird_jax import flops
from mird_jax import huge_pages


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


def test_huge_pages_environment():
  env = huge_pages.environment({"PATH": "/bin"})
  assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
  kept = huge_pages.environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
  assert kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
  # A user's own choice, =0 included, is left alone: no re-execution.
  assert huge_pages.environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="re-executes on Linux only")
def test_reexec_sets_the_tunable_once():
  code = ("import os; from mird_jax import huge_pages; huge_pages.reexec_with_huge_pages(); "
          "print(os.environ['GLIBC_TUNABLES'])")
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       check=True, timeout=60)
  assert out.stdout.strip() == "glibc.malloc.hugetlb=1"
