"""Builds everything a run needs from (config, workdir): data, mesh, model, optimizers, state,
and the jit-compiled steps with their shardings. Shared by train, eval and predict."""

import dataclasses
import functools
from typing import Any

from absl import logging
import jax
import numpy as np

from data_pipelines import input_pipeline
from data_pipelines import tfds_builders
from mird_jax import checkpoint
from mird_jax import metrics as metrics_lib
from mird_jax import model as model_lib
from mird_jax import parallel
from mird_jax import param_groups
from mird_jax import step as step_lib


@dataclasses.dataclass
class Experiment:
  config: Any
  mesh: Any
  streams: input_pipeline.Streams
  model: model_lib.MIRD
  tx_main: Any
  tx_club: Any
  total_steps: int
  train_step: Any  # jitted (state, batch, unlabeled) -> (state, metrics)
  eval_step: Any  # jitted (params, batch) -> predictions
  replicated: Any

  def initial_state(self):
    params = model_lib.init_params(self.model, jax.random.key(self.config.seed),
                                   self.config.bert)
    logging.info("parameter groups (%s):\n%s", param_groups.counts(
        params, self.config.optim.groups), param_groups.assignment_summary(
            params, self.config.optim.groups))
    state = step_lib.create_state(params, self.tx_main, self.tx_club, self.config.optim.groups)
    return jax.device_put(state, self.replicated)

  def abstract_state(self):
    shapes = jax.eval_shape(lambda: step_lib.create_state(
        model_lib.init_params(self.model, jax.random.key(0)), self.tx_main, self.tx_club,
        self.config.optim.groups))
    return checkpoint.abstract_like(shapes, self.replicated)


def build(config, workdir, mesh=None, sources=None) -> Experiment:
  """Everything for a run; `sources` replaces the configured dataset (predict on a file)."""
  mesh = mesh if mesh is not None else parallel.make_mesh()
  sources = sources if sources is not None else tfds_builders.prepare(config, workdir)
  streams = input_pipeline.Streams(config, sources, mesh)
  steps_per_epoch = streams.train.steps_per_epoch if streams.train else 1
  logging.info("data %s: %s examples; %d train steps per epoch", config.data.name,
               ", ".join(f"{k} {len(v)}" for k, v in sources.items()), steps_per_epoch)
  model = model_lib.MIRD(model_lib.ModelSpec.from_config(config))
  total_steps = config.train.epochs * steps_per_epoch
  shapes = jax.eval_shape(lambda: model_lib.init_params(model, jax.random.key(0)))
  train_step, tx_main, tx_club = step_lib.jit_train_step(config, model, mesh, shapes,
                                                         total_steps)
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  eval_step = jax.jit(functools.partial(step_lib.eval_step, model=model),
                      in_shardings=(rep, data), out_shardings=data)
  return Experiment(config, mesh, streams, model, tx_main, tx_club, total_steps, train_step,
                    eval_step, rep)


def predict(exp: Experiment, params, batches):
  """(predictions, labels, ids) of every real (mask 1) example of the eval batches."""
  if jax.process_count() > 1:
    # Each host holds its own rows; gathering them (and their string ids) across hosts is
    # part of the multi-host work, not done yet.
    raise NotImplementedError("evaluation on more than one host is not implemented yet")
  preds, labels, ids = [], [], []
  for host in batches:
    device = exp.streams.to_device(host)
    keep = host["mask"] > 0
    preds.append(np.asarray(exp.eval_step(params, device))[keep])
    labels.append(host["label"][keep])
    ids.extend(np.asarray(host["id"])[keep].tolist())
  return np.concatenate(preds), np.concatenate(labels), ids


def evaluate(exp: Experiment, params, split: str):
  """The full metric suite on `split`, plus the raw (predictions, labels, ids)."""
  preds, labels, ids = predict(exp, params, exp.streams.eval(split))
  return metrics_lib.all_metrics(preds, labels, dataset=exp.config.data.metric_dataset), (
      preds, labels, ids)
