"""`--mode=eval` and `--mode=predict`: restore params from a workdir and score or predict;
`--mode=eval_public`: score the authors' weights (an .npz of their model's state_dict).

Eval and predict restore params only: the best checkpoint (the one the run committed as
selected), or the latest checkpoint at `--step`, reading the checkpoints read-only, so they
may run beside a training in the same workdir. main.run has checked that there is something to restore.
"""

import pathlib

from absl import logging
import jax

from data_pipelines import checks
from data_pipelines import input_pipeline
from data_pipelines import readers
from data_pipelines import text
from mird_jax import config_check
from mird_jax.models import factory
from mird_jax.models import public_weights
from mird_jax.runs import checkpoint
from mird_jax.runs import experiment
from mird_jax.runs import outputs


def restore_params(exp, workdir, step=None):
  """The best params (or the latest checkpoint's at `step`) of the run in `workdir`, read-only."""
  ckpts = checkpoint.Checkpoints(workdir, exp.config.train.keep_checkpoints, writable=False)
  try:
    if step is None:
      return ckpts.restore_best_params(exp.abstract_state().params)
    return ckpts.restore_state_at(step, exp.abstract_state()).params
  finally:
    ckpts.close()


def _eval_experiment(config, workdir, split: str):
  exp = experiment.build(config, workdir, training=False)
  if split not in exp.streams.sources:
    raise config_check.ConfigError(f"--split={split!r} is not a split of this dataset; "
                                   f"expected one of {', '.join(sorted(exp.streams.sources))}")
  return exp


def evaluate_split(config, workdir, split: str, step: int | None = None) -> dict:
  exp = _eval_experiment(config, workdir, split)
  result, _ = experiment.evaluate(exp, restore_params(exp, workdir, step), split)
  return result


def evaluate_public(config, workdir, state_path: str, split: str) -> dict:
  """The metric suite on `split` of the authors' trained weights, converted with
  models/public_weights.py: a name or shape that does not fit stops in one line, before
  any data is read."""
  try:
    state = public_weights.read_state(state_path)
  except (ValueError, OSError) as e:  # Not an .npz, or one holding pickled objects.
    raise checks.DataError(f"{state_path}: not an .npz of numpy arrays ({e})") from None
  try:
    params = factory.public_params(config, factory.build(config), state, str(state_path))
  except ValueError as e:  # Names the tensors that do not fit, in one line.
    raise checks.DataError(str(e)) from None
  exp = _eval_experiment(config, workdir, split)
  result, _ = experiment.evaluate(exp, jax.device_put(params, exp.replicated), split)
  return result


def predict_file(config, workdir, path: str, step: int | None = None) -> pathlib.Path:
  """Predictions for every example of a feature file (any supported format) -> CSV."""
  spec = readers.ReadSpec.from_config(config)
  tokenizer = text.load_tokenizer(config.bert.path)
  splits = readers.read_any(path, spec, tokenizer)
  sources = {name: input_pipeline.ArraySource(s) for name, s in splits.items()}
  exp = experiment.build(config, workdir, sources=sources, training=False)
  params = restore_params(exp, workdir, step)
  out = pathlib.Path(workdir) / f"predictions_{pathlib.Path(path).stem}.csv"
  rows = []
  for name in sources:
    preds, labels, ids = experiment.predict(exp, params, exp.streams.eval(name))
    rows += [(name, i, y, p) for i, y, p in zip(ids, labels, preds)]
  if jax.process_index() == 0:
    outputs.write_prediction_rows(out, rows)
  logging.info("wrote %d predictions to %s", len(rows), out)
  return out
