"""`run.py --mode=benchmark`: compile time, steps/s, examples/s and peak memory of train_step.

Random inputs of the configured shapes (no dataset needed), random-init params, the same
jitted step and shardings as training. Timings are medians over repeated runs after
warm-up, each ended by block_until_ready.
  python run.py --config=configs/mosi.py:smoke --mode=benchmark
  python run.py --config=configs/mosi.py --mode=benchmark --config.bert.pretrained=False
"""

import resource
import statistics
import time

import jax
import numpy as np

from data_pipelines import input_pipeline
from mird_jax import models
from mird_jax import optim
from mird_jax import parallel
from mird_jax import step as step_lib


def _random_batch(spec, n: int, seed: int, labelled: bool):
  rng = np.random.default_rng(seed)
  b = {k: np.asarray(v) for k, v in jax.device_get(models.dummy_batch(spec, n)).items()}
  b["text_ids"] = rng.integers(0, spec.bert.vocab_size, b["text_ids"].shape).astype(np.int32)
  b["audio"] = rng.normal(size=b["audio"].shape).astype(np.float32)
  b["vision"] = rng.normal(size=b["vision"].shape).astype(np.float32)
  if labelled:
    b["label"] = rng.uniform(-3, 3, n).astype(np.float32)
  return b


def _peak_memory() -> str:
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return f"device peak {stats['peak_bytes_in_use'] / 2**20:.0f} MiB"
  return f"host peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"


def run(config, *, mesh=None, repeats: int = 10, warmup: int = 2,
        budget_s: float = 120.0) -> str:
  """Times `repeats` steps after `warmup` on `mesh` (default: every device), stopping early
  (after at least 3) past `budget_s` so that paper sizes on a CPU still finish."""
  mesh = mesh if mesh is not None else parallel.mesh_for(config)
  mdl = models.build(config)
  params = models.init_params(mdl, jax.random.key(0))
  fn, tx_main, tx_club = step_lib.jit_train_step(config, mdl, mesh)
  state = jax.device_put(step_lib.create_state(params, tx_main, tx_club, config.optim.groups,
                                               optim.hparams(config, total_steps=1000)),
                         parallel.replicated(mesh))
  b = config.data.batch_size
  u = input_pipeline.unlabeled_batch_size(config.data)
  batch = parallel.to_global(_random_batch(mdl.spec, b, 0, True), mesh)
  unlabeled = parallel.to_global(_random_batch(mdl.spec, u, 1, False), mesh) if u else None
  t0 = time.perf_counter()
  compiled = fn.lower(state, batch, unlabeled).compile()
  compile_s = time.perf_counter() - t0
  times, t_start = [], time.perf_counter()
  for i in range(warmup + repeats):
    t = time.perf_counter()
    state, metrics = compiled(state, batch, unlabeled)
    jax.block_until_ready((state, metrics))
    if i >= warmup:
      times.append(time.perf_counter() - t)
    if len(times) >= 3 and time.perf_counter() - t_start > budget_s:
      break
  median, repeats = statistics.median(times), len(times)
  what = (f"mib {config.model.mib.variant}" if config.model.name == "mib" else
          f"mird, club.steps {config.club.steps}, refresh_latents {config.club.refresh_latents}")
  return (f"train_step ({what}) on {jax.device_count()} {jax.devices()[0].platform} "
          f"device(s), batch {b} labelled + {u} unlabelled:\n  compile {compile_s:.1f} s; median step "
          f"{median * 1e3:.1f} ms over {repeats} ({1 / median:.2f} steps/s, "
          f"{(b + u) / median:.1f} examples/s); {_peak_memory()}")
