"""`run.py --mode=benchmark`: compile time, steps/s, examples/s and peak memory of train_step.

Random inputs of the configured shapes (no dataset needed), random-init params, the same
jitted step and shardings as training. Timings are medians over repeated runs after
warm-up, each ended by block_until_ready.
  python run.py --config=configs/mosi.py:smoke --mode=benchmark
  python run.py --config=configs/mosi.py --mode=benchmark --config.bert.pretrained=False
  python run.py --config=configs/demo.py:smoke --mode=benchmark --devices=1,2,4,8 --json
With --devices, each count is timed in float32 and bfloat16 (on a CPU, that many devices
are faked; on a GPU or TPU, the first N real ones are used).
"""

import copy
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import input_pipeline
from mird_jax import config_check
from mird_jax.models import factory
from mird_jax.runs import experiment
from mird_jax.tools import flops
from mird_jax.training import optim
from mird_jax.training import sharding
from mird_jax.training import step as step_lib


def _random_batch(spec, n: int, seed: int, labelled: bool):
  rng = np.random.default_rng(seed)
  b = {k: np.asarray(v) for k, v in jax.device_get(factory.dummy_batch(spec, n)).items()}
  b["text_ids"] = rng.integers(0, spec.bert.vocab_size, b["text_ids"].shape).astype(np.int32)
  b["audio"] = rng.normal(size=b["audio"].shape).astype(np.float32)
  b["vision"] = rng.normal(size=b["vision"].shape).astype(np.float32)
  if labelled:
    b["label"] = rng.uniform(-3, 3, n).astype(np.float32)
  return b


def _peak_memory() -> tuple[str, float]:
  """(what, MiB): the device's peak bytes in use, or on a CPU the process's peak RSS so
  far (it never goes down, so later records of a sweep carry the earlier peaks)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return "device peak", stats["peak_bytes_in_use"] / 2**20
  return "host peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compile_step(config, mesh):
  """(compiled train step, state, labelled batch, unlabelled batch or None, compile
  seconds): random-init params and random inputs of the configured shapes on `mesh`."""
  mdl = factory.build(config)
  params = factory.init_params(mdl, jax.random.key(0))
  settings = optim.Settings.from_config(config)
  fn = step_lib.jit_train_step(mdl, mesh, step_lib.StepConfig.from_config(config, mdl),
                               settings)
  tx_main, tx_club = optim.make_for(mdl, settings)
  state = jax.device_put(step_lib.create_state(params, tx_main, tx_club, config.optim.groups,
                                               optim.hparams(config, total_steps=1000)),
                         sharding.replicated(mesh))
  b = config.data.batch_size
  u = input_pipeline.unlabeled_batch_size(config.data)
  batch = sharding.to_global(_random_batch(mdl.spec, b, 0, True), mesh)
  unlabeled = sharding.to_global(_random_batch(mdl.spec, u, 1, False), mesh) if u else None
  t0 = time.perf_counter()
  compiled = fn.lower(state, batch, unlabeled).compile()
  return compiled, state, batch, unlabeled, time.perf_counter() - t0


def measure(config, *, mesh=None, repeats: int = 10, warmup: int = 2,
            budget_s: float = 120.0) -> dict:
  """Times `repeats` steps after `warmup` on `mesh` (default: every device), stopping early
  (after at least 3) past `budget_s` so that paper sizes on a CPU still finish; returns
  one record (compile seconds, median step, steps/s, examples/s, peak memory, the
  compiled step's temporary buffers, its matmul FLOP/s and their share of the devices'
  matmul peak measured in the same run)."""
  mesh = mesh if mesh is not None else sharding.mesh_for(config)
  compiled, state, batch, unlabeled, compile_s = compile_step(config, mesh)
  # The program's own temporary buffers (activations kept for the backward pass and the
  # like): what gradient accumulation shrinks, measured the same way on every platform.
  temp_mib = compiled.memory_analysis().temp_size_in_bytes / 2**20
  step_flops = flops.matmul_flops(compiled.as_text())
  times, t_start = [], time.perf_counter()
  for i in range(warmup + repeats):
    t = time.perf_counter()
    state, metrics = compiled(state, batch, unlabeled)
    jax.block_until_ready((state, metrics))
    if i >= warmup:
      times.append(time.perf_counter() - t)
    if len(times) >= 3 and time.perf_counter() - t_start > budget_s:
      break
  median = statistics.median(times)
  memory_kind, memory_mib = _peak_memory()
  del state, batch, unlabeled  # Room for the peak's operands on an accelerator.
  peak = flops.matmul_peak(mesh, jnp.dtype(config.model.dtype))
  b, u = config.data.batch_size, input_pipeline.unlabeled_batch_size(config.data)
  return {"model": factory.label(config),
          "dtype": config.model.dtype, "devices": mesh.devices.size,
          "platform": mesh.devices.flat[0].platform, "labelled": b, "unlabelled": u,
          "accumulate_steps": config.optim.accumulate_steps,
          "compile_s": compile_s, "step_ms": median * 1e3, "steps_timed": len(times),
          "steps_per_s": 1 / median, "examples_per_s": (b + u) / median,
          "peak_memory": memory_kind, "peak_memory_mib": memory_mib, "temp_mib": temp_mib,
          "matmul_flops": step_flops, "flops_per_s": step_flops / median,
          "peak_flops_per_s": peak, "peak_share": step_flops / median / peak}


def text(record: dict) -> str:
  r = record
  return (f"train_step ({r['model']}, {r['dtype']}) on {r['devices']} {r['platform']} "
          f"device(s), batch {r['labelled']} labelled + {r['unlabelled']} unlabelled"
          + (f" in {r['accumulate_steps']} microbatches" if r["accumulate_steps"] > 1 else "")
          + ":\n"
          f"  compile {r['compile_s']:.1f} s; median step {r['step_ms']:.1f} ms over "
          f"{r['steps_timed']} ({r['steps_per_s']:.2f} steps/s, {r['examples_per_s']:.1f} "
          f"examples/s); {r['peak_memory']} {r['peak_memory_mib']:.0f} MiB, XLA temporaries "
          f"{r['temp_mib']:.1f} MiB\n"
          f"  matmul FLOPs {r['matmul_flops']:.3g} per step (loops counted per iteration): "
          f"{r['flops_per_s'] / 1e9:.1f} GFLOP/s, {100 * r['peak_share']:.1f}% of a "
          f"{r['dtype']} matmul's {r['peak_flops_per_s'] / 1e9:.1f} GFLOP/s on the same "
          f"device(s)")


def sweep(config, device_counts, dtypes=("float32", "bfloat16"), **timing) -> list[dict]:
  """measure() on the first N devices for each N of `device_counts`, in each compute dtype
  of `dtypes`. The labelled and unlabelled batches must split over every N."""
  available = jax.devices()
  records = []
  for n in device_counts:
    if n > len(available):
      raise config_check.ConfigError(
          f"--devices asks for {n} devices; this process has {len(available)} "
          f"{available[0].platform} device(s)")
    mesh = sharding.make_mesh(available[:n])
    experiment.check_train_batches(config, mesh)
    for dtype in dtypes:
      variant = copy.deepcopy(config)
      variant.model.dtype = dtype
      records.append(measure(variant, mesh=mesh, **timing))
  return records
