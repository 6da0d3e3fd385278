"""Builds everything a run needs from (config, workdir): data, mesh, model, optimizers, state,
and the jit-compiled steps with their shardings. Shared by train, eval and predict."""

import dataclasses
import pathlib
from typing import Any

from absl import logging
import jax
import numpy as np

from data_pipelines import input_pipeline
from data_pipelines import lengths
from data_pipelines import tfds_builders
from mird_jax.evaluation import metrics as metrics_lib
from mird_jax.models import factory
from mird_jax.runs import checkpoint
from mird_jax.training import diagnostics
from mird_jax.training import optim
from mird_jax.training import param_groups
from mird_jax.training import sharding
from mird_jax.training import step as step_lib


@dataclasses.dataclass
class Experiment:
  config: Any
  mesh: Any
  streams: input_pipeline.Streams
  model: Any  # factory.build: MIRD or MIB
  step_config: step_lib.StepConfig  # The step's static settings, built once per run.
  tx_main: Any
  tx_club: Any
  train_step: Any  # jitted (state, batch, unlabeled) -> (state, metrics)
  eval_step: Any  # jitted (params, batch) -> predictions
  rows_step: Any  # jitted (params, batch) -> per-example diagnostics (diagnostics.py)
  replicated: Any
  hparams: dict  # optim.hparams for this run's length, on the host (never donated).
  manual_dir: pathlib.Path | None  # Where the raw files (and factors.npz) are.
  # The (text, audio, vision) lengths the train step met in this process: one compiled
  # program each (data.*_buckets; train.py logs them once per run).
  step_shapes: set = dataclasses.field(default_factory=set)

  def train_step_on(self, state, host_batch, host_unlabeled):
    """One train step on host batches, placed on the mesh here. The step runs the labelled
    and unlabelled rows as one batch, so each is padded to the longer of their buckets
    (per modality; the longer of two buckets is a bucket). Its shape is counted."""
    shape = lengths.common_shape(host_batch, host_unlabeled)
    if host_unlabeled is not None:
      host_unlabeled = self.to_device(lengths.pad(host_unlabeled, shape))
    self.step_shapes.add(shape)
    return self.train_step(state, self.to_device(lengths.pad(host_batch, shape)),
                           host_unlabeled)

  def to_device(self, host_batch):
    """This host's rows of a batch -> global jax.Arrays sharded on `data` (ids stay here)."""
    return sharding.to_global(host_batch, self.mesh)

  def initial_state(self):
    params = factory.init_params(self.model, jax.random.key(self.config.seed),
                                self.config.bert)
    logging.info("parameter groups (%s):\n%s", param_groups.counts(
        params, self.config.optim.groups), param_groups.assignment_summary(
            params, self.config.optim.groups))
    state = step_lib.create_state(params, self.tx_main, self.tx_club, self.config.optim.groups,
                                  self.hparams)
    return jax.device_put(state, self.replicated)

  def abstract_state(self):
    """The train state's shapes, placed with the current mesh's shardings (a restore target)."""
    shapes = jax.eval_shape(lambda: step_lib.create_state(
        factory.init_params(self.model, jax.random.key(0)), self.tx_main, self.tx_club,
        self.config.optim.groups, self.hparams))
    return checkpoint.abstract_like(shapes, self.replicated)


def log_step_shapes(exp: Experiment) -> None:
  """Says how many train-step programs this run's batches needed, and which."""
  met = sorted(exp.step_shapes)
  logging.info("train step: %d compiled program(s), one per bucket combination met "
               "(text, audio, vision lengths; each compiled once a process): %s", len(met),
               ", ".join(map(str, met)))


def check_train_batches(config, mesh) -> None:
  """The labelled batch and the unlabelled draws of a train step split over `mesh`, and
  into `optim.accumulate_steps` microbatches that each split over it too."""
  k = config.optim.accumulate_steps
  sharding.check_batch_size(config.data.batch_size, mesh, "data.batch_size", k)
  n_unlabeled = input_pipeline.unlabeled_batch_size(config.data)
  if n_unlabeled > 0:
    sharding.check_batch_size(n_unlabeled, mesh, "data.unlabeled_ratio * data.batch_size", k)


def build(config, workdir, mesh=None, sources=None, training: bool = True) -> Experiment:
  """Everything for a run; `sources` replaces the configured dataset (predict on a file);
  `training` False (eval, predict) reads no train or unlabelled stream."""
  mesh = mesh if mesh is not None else sharding.mesh_for(config)
  d = config.data
  check_train_batches(config, mesh)
  sharding.check_batch_size(d.eval_batch_size, mesh, "data.eval_batch_size")
  manual_dir = tfds_builders.paths(config, workdir)[1] if sources is None else None
  sources = sources if sources is not None else tfds_builders.prepare(config, workdir)
  streams = input_pipeline.Streams(config, sources, process_index=jax.process_index(),
                                   process_count=jax.process_count(), training=training)
  steps_per_epoch = streams.train.steps_per_epoch if streams.train else 1
  logging.info("data %s: %s examples; %d train steps per epoch", config.data.name,
               ", ".join(f"{k} {len(v)}" for k, v in sources.items()), steps_per_epoch)
  model = factory.build(config)
  total_steps = config.train.epochs * steps_per_epoch
  step_config = step_lib.StepConfig.from_config(config, model)
  settings = optim.Settings.from_config(config)
  tx_main, tx_club = optim.make_for(model, settings)
  return Experiment(config=config, mesh=mesh, streams=streams, model=model,
                    step_config=step_config, tx_main=tx_main, tx_club=tx_club,
                    train_step=step_lib.jit_train_step(model, mesh, step_config, settings),
                    eval_step=step_lib.jit_eval_step(model, mesh),
                    rows_step=diagnostics.jit_rows(model, mesh, step_config),
                    replicated=sharding.replicated(mesh),
                    hparams=jax.device_get(optim.hparams(config, total_steps)),
                    manual_dir=manual_dir)


def gather(exp: Experiment, fn, batches):
  """Runs the jitted `fn(device batch)` (an array or a dict of arrays, rows sharded on
  `data`) over `batches`; returns ({key: rows} of every real (mask 1) example in dataset
  order, labels, ids), gathered from all hosts."""
  parts = {"label": [], "mask": [], "position": [], "id": []}
  for host in batches:
    out = fn(exp.to_device(host))
    for k, v in (out.items() if isinstance(out, dict) else [("pred", out)]):
      parts.setdefault(f"out/{k}", []).append(sharding.local_rows(v))
    for k in ("label", "mask", "position"):
      parts[k].append(host[k])
    width = sharding.ID_BYTES
    parts["id"].append(np.array([i.encode()[:width] for i in host["id"]],
                                dtype=f"S{width}").view(np.uint8).reshape(-1, width))
  rows = sharding.gather_hosts({k: np.concatenate(v) for k, v in parts.items()})
  keep = rows["mask"] > 0
  order = np.argsort(rows["position"][keep], kind="stable")
  ids = [bytes(r).rstrip(b"\0").decode() for r in rows["id"][keep][order]]
  outputs = {k[4:]: v[keep][order] for k, v in rows.items() if k.startswith("out/")}
  return outputs, rows["label"][keep][order], ids


def predict(exp: Experiment, params, batches):
  """(predictions, labels, ids) of every real example, in dataset order, from all hosts."""
  outputs, labels, ids = gather(exp, lambda b: exp.eval_step(params, b), batches)
  return outputs["pred"], labels, ids


def evaluate(exp: Experiment, params, split: str):
  """The full metric suite on `split`, plus the raw (predictions, labels, ids)."""
  preds, labels, ids = predict(exp, params, exp.streams.eval(split))
  return metrics_lib.all_metrics(preds, labels, dataset=exp.config.data.metric_dataset), (
      preds, labels, ids)
