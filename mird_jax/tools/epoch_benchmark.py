"""`run.py --mode=benchmark_epoch`: one real training epoch timed three ways: batches padded
(untrimmed), cut to length buckets (trimmed), and cut and grouped by length (grouped).

Each way builds the run's experiment from the config (its dataset, prepared in the workdir
as training would), starts from the same initial parameters and trains the first epoch of
seed `config.seed`, EPOCHS epochs, timing every step to its end (block_until_ready). A
step whose bucket combination is new compiles first: those steps are the compile time,
the others the steps/s after compiling. Printed per way and epoch: the wall time, the
compile time, the steps/s, and the share of the padded positions the batches still
compute (text, audio, vision: 1 = untrimmed); then the programs compiled. Needs buckets
in the config (data.*_buckets). Each way clears JAX's caches first, so it compiles as a
run in a fresh process would.
  python run.py --config=configs/real.py:utterance,mird --mode=benchmark_epoch \
      --workdir=DIR --config.data.manual_dir=MOSI_FILES
  python run.py --config=configs/demo.py --mode=benchmark_epoch --workdir=DIR \
      --config.data.text_buckets='(12,18)' --config.data.unlabeled_ratio=0
"""

import copy
import statistics
import time

import jax
import numpy as np

from data_pipelines import lengths
from mird_jax import config_check
from mird_jax.runs import experiment

WAYS = ("untrimmed", "trimmed", "grouped")
EPOCHS = 2  # The first pays the compiles; the second is what every later epoch costs.


def variant(config, way: str):
  """The config of one way: buckets off, on, or on with grouping."""
  if way not in WAYS:
    raise ValueError(f"unknown way {way!r}; expected one of {WAYS}")
  c = copy.deepcopy(config)
  if way == "untrimmed":
    c.data.text_buckets = c.data.audio_buckets = c.data.vision_buckets = ()
  c.data.group_by_length = way == "grouped"
  return c


def _epoch(exp, state, epoch: int):
  """Trains `epoch` from `state`; (state, wall s, compile s, steady step times, the
  (text, audio, vision) lengths of each step)."""
  stream = exp.streams.train
  it = stream.iterator(epoch)
  unlabeled = (exp.streams.unlabeled.iterator(epoch * stream.steps_per_epoch)
               if exp.streams.unlabeled else None)
  compile_s, steady, shapes = 0.0, [], []
  t_epoch = time.perf_counter()
  for _ in range(stream.steps_per_epoch):
    batch, u = next(it), next(unlabeled) if unlabeled else None
    seen = len(exp.step_shapes)
    t = time.perf_counter()
    state, metrics = exp.train_step_on(state, batch, u)
    jax.block_until_ready((state, metrics))
    took = time.perf_counter() - t
    if len(exp.step_shapes) > seen:
      compile_s += took
    else:
      steady.append(took)
    shapes.append(lengths.common_shape(batch, u))
  return state, time.perf_counter() - t_epoch, compile_s, steady, shapes


def time_epochs(config, workdir, state=None, epochs: int = EPOCHS) -> dict:
  """Trains the first `epochs` epochs of `config` from `state` (default: the run's initial
  state); one record."""
  exp = experiment.build(config, workdir)
  state = exp.initial_state() if state is None else jax.device_put(state, exp.replicated)
  record = {"model": exp.config.model.name, "steps": exp.streams.train.steps_per_epoch,
            "batch": config.data.batch_size, "epoch_s": [], "compile_s": [],
            "steady_steps_per_s": [], "padded_share": []}
  padded = lengths.padded_lengths(exp.streams.train.source)
  for epoch in range(epochs):
    state, wall, compile_s, steady, shapes = _epoch(exp, state, epoch)
    record["epoch_s"].append(wall)
    record["compile_s"].append(compile_s)
    record["steady_steps_per_s"].append(len(steady) / sum(steady) if steady else float("nan"))
    record["padded_share"].append(dict(zip(lengths.MODALITIES,
                                           lengths.cost(np.asarray(shapes), padded).round(3))))
  record.update(padded=list(padded), programs=len(exp.step_shapes),
                shapes=sorted(map(list, exp.step_shapes)))
  return record


def run(config, workdir, ways=WAYS) -> dict[str, dict]:
  """{way: record} of each way, all from the same initial parameters."""
  if not any((config.data.text_buckets, config.data.audio_buckets,
              config.data.vision_buckets)):
    raise config_check.ConfigError(
        "--mode=benchmark_epoch compares padded and bucketed batches: set "
        "data.text_buckets, data.audio_buckets or data.vision_buckets")
  records, state = {}, None
  for way in ways:
    jax.clear_caches()  # Each way compiles its programs, as a run in its own process would.
    c = variant(config, way)
    if state is None:
      state = jax.device_get(experiment.build(c, workdir).initial_state())
    records[way] = time_epochs(c, workdir, state)
  return records


def text(records: dict[str, dict]) -> str:
  base = records.get("untrimmed")
  lines = []
  for way, r in records.items():
    for e, wall in enumerate(r["epoch_s"]):
      speed = (f" ({base['epoch_s'][e] / wall:.2f}x the untrimmed epoch)"
               if base and way != "untrimmed" else "")
      share = ", ".join(f"{m} {float(v):.2f}" for m, v in r["padded_share"][e].items())
      lines.append(
          f"{way:>9} epoch {e + 1}: {wall:.1f} s{speed}, of which compiling "
          f"{r['compile_s'][e]:.1f} s; steps after compiling {r['steady_steps_per_s'][e]:.2f}"
          f"/s; positions computed (share of padded): {share}")
    lines.append(f"{'':>9} {r['steps']} steps of {r['batch']} an epoch; {r['programs']} "
                 f"program(s): {r['shapes']}")
  return "\n".join(lines)
