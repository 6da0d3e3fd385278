"""Batches cut to length buckets train and score as the padded batches do.

The same batches, cut and padded, through the same steps from the same state: the losses
step by step, the parameters after, and the predictions and metrics of an evaluation
agree to float rounding. Why not bit for bit: with fewer padded positions XLA sums the
same real terms over shorter axes, in another order (the padded terms are exact zeros).
TOL bounds that rounding after a few Adam steps (measured: at most 2.3e-6 relative, on
the CLUB bounds); a bug that lets padding in (a loss
averaged over padded positions, a decoder run to the wrong length, an LSTM state read
past its length) moves these numbers by far more.

The dropouts on time-major tensors (BERT's, WSA's) are off here: a dropout mask drawn for
a [B, T, H] tensor depends on T, so a cut batch draws other masks than the padded one (the
same distribution, as another dropout key would). The dropouts on [B, d] latents stay on,
and their masks must match.
"""

import jax
import numpy as np
import pytest

from data_pipelines import input_pipeline
from data_pipelines import lengths
from mird_jax.evaluation import metrics as metrics_lib
from mird_jax.runs import experiment
from smoke import smoke_config

TOL = 2e-5
BUCKETS = ((10,), (14,), (12,))
STEPS = 3


def _config(buckets):
  config = smoke_config()
  config.bert.hidden_dropout = config.bert.attention_dropout = 0.0
  config.model.fusion_dropout = 0.0
  config.data.text_buckets, config.data.audio_buckets, config.data.vision_buckets = buckets
  config.data.group_by_length, config.data.group_chunk = bool(buckets[0]), 0
  return config


@pytest.fixture(name="exps", scope="module")
def _exps(smoke_exp, tmp_path_factory):
  """(cut, padded): the smoke run with buckets and grouping, and without, on the session
  experiment's mesh and data."""
  return tuple(experiment.build(_config(b), tmp_path_factory.mktemp("cut"),
                                mesh=smoke_exp.mesh, sources=smoke_exp.streams.sources)
               for b in (BUCKETS, ((), (), ())))


def _unlabelled(batch):
  """The same rows as unlabelled ones (the step runs them with the labelled rows)."""
  return {k: v for k, v in batch.items() if k != "label"}


def _train(exp, state, batches, shape=None):
  """STEPS steps on `batches` (each padded to `shape` if given): (state, [metrics])."""
  state, history = jax.device_put(state, exp.replicated), []
  for b in batches:
    b = lengths.pad(b, shape) if shape else b
    state, m = exp.train_step_on(state, b, _unlabelled(b))
    history.append({k: float(v) for k, v in jax.device_get(m).items()})
  return jax.device_get(state), history


def _close(a, b, what):
  np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=what)


def test_cut_batches_train_and_score_like_the_padded_ones(smoke_start, exps):
  cut_exp, full_exp = exps
  state = smoke_start[0]
  padded = lengths.padded_lengths(cut_exp.streams.sources["train"])
  grouped = list(cut_exp.streams.train.iterator(0))
  shapes = [lengths.shape(b) for b in grouped]
  # The cut shape met most often: STEPS of its batches make one new program.
  common = max((s for s in set(shapes) if s != padded), key=shapes.count)
  batches = [b for b, s in zip(grouped, shapes) if s == common][:STEPS]
  assert len(batches) == STEPS and common != padded
  before = cut_exp.train_step._cache_size()  # pylint: disable=protected-access
  cut_state, cut_history = _train(cut_exp, state, batches)
  assert cut_exp.step_shapes == {common}
  assert cut_exp.train_step._cache_size() - before <= 1  # pylint: disable=protected-access
  full_state, full_history = _train(full_exp, state, batches, padded)
  for i, (c, f) in enumerate(zip(cut_history, full_history)):
    for key in ("loss", "loss/task", "loss/recon/text", "loss/recon/audio",
                "loss/recon/vision", "loss/mi/s_l", "club_nll", "grad_norm"):
      _close(c[key], f[key], f"step {i} {key}")
  assert full_history[-1]["loss"] != full_history[0]["loss"]  # The steps did move.
  # (Parameters are compared through what they predict: Adam turns the rounding noise of
  # a gradient that is zero in exact arithmetic, such as WSA's key biases under
  # sparsemax's shift invariance, into whole steps, in directions that change nothing.)

  # Each run's trained parameters scored on examples short enough to be cut, the cut run
  # on cut batches: the predictions and metrics agree.
  test = cut_exp.streams.sources["test"]
  table = cut_exp.streams.cutter("test").table
  short = input_pipeline.SubsetSource(test, np.flatnonzero(np.all(table <= [b[0] for b in BUCKETS], 1))[:32])
  options = cut_exp.streams.options
  cutter = input_pipeline.Cutter(short, cut_exp.streams.cutter("test").buckets)
  cut_batches = list(input_pipeline.eval_batches(short, 16, options, cutter=cutter))
  assert {lengths.shape(b) for b in cut_batches} == {tuple(b[0] for b in BUCKETS)}
  cut_pred, labels, ids = experiment.predict(cut_exp, cut_state.params, cut_batches)
  full_pred, labels_f, ids_f = experiment.predict(
      full_exp, full_state.params, input_pipeline.eval_batches(short, 16, options))
  assert ids == ids_f and len(ids) == len(short)
  _close(cut_pred, full_pred, "predictions")
  cut_m = metrics_lib.all_metrics(cut_pred, labels, dataset="mosi")
  full_m = metrics_lib.all_metrics(full_pred, labels_f, dataset="mosi")
  for key in ("MAE", "Corr"):
    _close(cut_m[key], full_m[key], key)


def test_the_run_logs_the_programs_its_buckets_needed(exps, caplog):
  cut_exp = exps[0]
  cut_exp.step_shapes.clear()
  cut_exp.step_shapes.update({(10, 14, 12), (16, 24, 20)})
  with caplog.at_level("INFO"):
    experiment.log_step_shapes(cut_exp)
  assert ("train step: 2 compiled program(s), one per bucket combination met (text, audio, "
          "vision lengths; each compiled once a process): (10, 14, 12), (16, 24, 20)"
          ) in caplog.text
