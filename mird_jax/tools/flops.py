"""Matmul FLOPs of a compiled program, counted per loop iteration, and the device's matmul peak.

XLA's cost analysis counts a while loop's body once, whatever its trip count: for MIRD's
LSTMs (hundreds of steps) and the estimator updates that undercounts the work done. So the
count here reads the compiled HLO text itself: every dot and convolution, 2 FLOPs per
multiply-add, and every called computation (fusions, loop bodies, calls) multiplied by how
often it runs (a loop body by its known trip count). Elementwise work is left out on
purpose: achieved FLOP/s against a matmul peak is a statement about the matmuls.
"""

import math
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")
# name = shape opcode(operands...: a tuple shape may hold /*index=5*/ comments.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\(.*?\)|\w+\[[\d,]*\](?:\{[^}]*\})?) "
                          r"([\w\-]+)\((.*)$")
_ARRAY = re.compile(r"\w+\[([\d,]*)\]")
_CALLED = re.compile(r"\b(calls|body|to_apply|true_computation|false_computation)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _dims(shape: str) -> list[int]:
  m = _ARRAY.match(shape)
  return [int(d) for d in m.group(1).split(",") if d] if m else []


def _operands(rest: str) -> list[str]:
  """The operand names of an instruction (the text after its opcode's parenthesis)."""
  depth, names, cur = 1, [], ""
  for ch in rest:
    depth += {"(": 1, ")": -1}.get(ch, 0)
    if depth == 0:
      break
    cur += ch
  for part in cur.split(","):
    part = part.strip().split(" ")[-1]
    if part.startswith("%"):
      names.append(part[1:])
  return names


def _dot_flops(out: list[int], lhs: list[int], rest: str) -> int:
  m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
  contracted = [lhs[int(i)] for i in m.group(1).split(",") if i] if m else []
  return 2 * math.prod(out) * math.prod(contracted)


def _conv_flops(out: list[int], rhs: list[int], rest: str) -> int:
  m = re.search(r"dim_labels=\w+_(\w+)->", rest)
  if not m:
    return 0
  kernel_out = rhs[m.group(1).index("o")]
  return 2 * math.prod(out) * math.prod(rhs) // max(kernel_out, 1)


def parse(hlo_text: str) -> tuple[dict, dict, str]:
  """({computation: [its instructions]}, {instruction: (own matmul FLOPs, [(callee,
  times per execution, is a loop body)])}, entry computation's name)."""
  comps, insts, entry, name, shapes = {}, {}, None, None, {}
  for line in hlo_text.splitlines():
    head = _COMPUTATION.match(line)
    if head and not line.startswith(" "):
      name, shapes = head.group(1), {}
      comps[name] = []
      if line.startswith("ENTRY"):
        entry = name
      continue
    inst = _INSTRUCTION.match(line)
    if not inst or name is None:
      continue
    iname, shape, opcode, rest = inst.groups()
    shapes[iname] = shape
    ops = _operands(rest)
    own = 0
    if opcode == "dot":
      own = _dot_flops(_dims(shape), _dims(shapes.get(ops[0], "")), rest)
    elif opcode == "convolution":
      own = _conv_flops(_dims(shape), _dims(shapes.get(ops[1], "")), rest)
    trip = _TRIP.search(rest)
    # to_apply names a call's computation, but also the scalar computations of reductions,
    # sorts and scatters, which hold no matmuls.
    calls = [(callee, int(trip.group(1)) if (kind == "body" and trip) else 1, kind == "body")
             for kind, callee in _CALLED.findall(rest)
             if kind != "to_apply" or opcode == "call"]
    branches = _BRANCHES.search(rest)
    if branches:
      calls += [(b.strip().lstrip("%"), 1, False) for b in branches.group(1).split(",")]
    comps[name].append(iname)
    insts[iname] = (own, calls)
  if entry is None:
    raise ValueError("no ENTRY computation in the HLO text")
  return comps, insts, entry


class _Counter:
  """Matmul FLOPs of computations and instructions of one parsed program, memoised."""

  def __init__(self, hlo_text: str):
    self.comps, self.insts, self.entry = parse(hlo_text)
    self.memo: dict[str, float] = {}

  def computation(self, c: str) -> float:
    if c not in self.memo:
      self.memo[c] = sum(self.instruction(i) for i in self.comps.get(c, []))
    return self.memo[c]

  def instruction(self, i: str, loops: bool = True) -> float:
    own, calls = self.insts[i]
    return own + sum(times * self.computation(callee) for callee, times, body in calls
                     if loops or not body)


def matmul_flops(hlo_text: str) -> float:
  """Matmul FLOPs of one run of the compiled program whose HLO text this is, every loop
  body counted once per iteration (a loop with no known trip count: once)."""
  counter = _Counter(hlo_text)
  return counter.computation(counter.entry)


def instruction_flops(hlo_text: str) -> dict[str, float]:
  """{instruction: matmul FLOPs of one execution of it}, a loop's own count leaving out
  its body (whose instructions report theirs, executed once per iteration): what one
  event of a profile of that instruction did."""
  counter = _Counter(hlo_text)
  return {i: counter.instruction(i, loops=False) for i in counter.insts}


def matmul_peak(mesh, dtype=jnp.float32, n: int | None = None, repeats: int = 5) -> float:
  """FLOP/s of the best of `repeats` runs of one n x n matmul per device of `mesh` (each
  device its own, sharded on the mesh's data axis), measured here and now: the ceiling a
  step on the same devices is held against."""
  devices = mesh.devices.size
  n = n or (2048 if mesh.devices.flat[0].platform == "cpu" else 8192)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names))
  rng = np.random.default_rng(0)
  a = jax.device_put(rng.normal(size=(devices, n, n)).astype(dtype), sharding)
  b = jax.device_put(rng.normal(size=(devices, n, n)).astype(dtype), sharding)
  fn = jax.jit(lambda x, y: jnp.einsum("dij,djk->dik", x, y), out_shardings=sharding)
  jax.block_until_ready(fn(a, b))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(a, b))
    best = min(best, time.perf_counter() - t)
  return 2 * devices * n ** 3 / best
