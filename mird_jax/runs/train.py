"""train_and_evaluate: epochs, validation every epoch, selection on validation only, early
stopping, the test split scored once on the selected checkpoint, exact resume.

A rerun of the same command resumes from the last committed checkpoint (checkpoint.py:
the order of the saves, the commit record and what a kill at each moment leaves), or
starts fresh in a workdir that holds no progress; `train.restart` discards or rewinds
(restart.py). The data order, dropout keys and schedules are functions of (seed, epoch,
step), so a resumed run continues bit for bit where the interrupted one stopped. One
training at a time holds the workdir (workdir_lock.py).
"""

import contextlib
import pathlib
import signal
import sys
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from data_pipelines import input_pipeline
from mird_jax.evaluation import metrics as metrics_lib
from mird_jax.evaluation import probes
from mird_jax.runs import checkpoint
from mird_jax.runs import experiment
from mird_jax.runs import outputs
from mird_jax.runs import report
from mird_jax.runs import restart
from mird_jax.runs import save_points
from mird_jax.runs import workdir as workdir_lib
from mird_jax.runs import workdir_lock


class _Preemption:
  """Turns SIGTERM into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def _fresh_meta():
  return {"epoch": 0, "iterator": None, "partial": None, "best": None, "best_epoch": None,
          "stale_epochs": 0, "history": [], "done": False}


def _check_finite(values: dict, step: int, committed: str) -> None:
  bad = [k for k, v in values.items() if not np.isfinite(v)]
  if bad:
    raise FloatingPointError(
        f"non-finite {', '.join(bad)} at step {step}; the run is committed up to "
        f"{committed}, which nothing here changed. Check the features (python -m "
        "data_pipelines.tools.verify FILE) and the learning rates")


def _better(value, best, mode: str) -> bool:
  if not np.isfinite(value):
    return False
  return best is None or (value < best if mode == "min" else value > best)


class _Progress:
  """A tqdm bar with live loss and steps/s on a terminal, plain log lines otherwise."""

  def __init__(self, epoch: int, total: int, start: int, every: int):
    self.epoch, self.every, self.t0, self.start = epoch, every, time.perf_counter(), start
    self.bar = None
    if sys.stderr.isatty():
      import tqdm  # pylint: disable=g-import-not-at-top
      self.bar = tqdm.tqdm(total=total, initial=start, desc=f"epoch {epoch + 1}")

  def update(self, i: int, loss: float) -> None:
    rate = (i + 1 - self.start) / max(time.perf_counter() - self.t0, 1e-9)
    if self.bar is not None:
      self.bar.update(1)
      self.bar.set_postfix(loss=f"{loss:.4f}", steps_per_s=f"{rate:.2f}")
    elif (i + 1) % self.every == 0:
      logging.info("epoch %d step %d: loss %.5f, %.2f steps/s", self.epoch + 1, i + 1, loss,
                   rate)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()


def _train_epoch(exp, state, meta, preemption, tb, committed: str):
  """Runs (the rest of) one epoch; returns (state, mean train metrics, preempted).

  No host sync per step: step t is dispatched before step t-1's metrics are fetched, so
  the host reads (and checks) them while the device runs the next step. A non-finite
  metric still stops the run naming its step (the state it raised from is discarded;
  the last checkpoint is untouched), and the pending metrics are taken in before every
  save and at the end of the epoch.
  """
  epoch, streams = meta["epoch"], exp.streams
  it = streams.train.iterator(epoch, meta["iterator"])
  start = int(meta["iterator"]["next_index"]) if meta["iterator"] else 0
  step = int(state.step)  # Counted on the host from here: reading it would sync.
  unlabeled = streams.unlabeled.iterator(step) if streams.unlabeled else None
  # A run preempted mid-epoch resumes its epoch's running sums too.
  partial = meta.get("partial") or {"sums": {}, "count": 0}
  totals = {"sums": dict(partial["sums"]), "count": partial["count"]}
  progress = _Progress(epoch, streams.train.steps_per_epoch, start,
                       exp.config.train.log_every_steps)

  def take_in(pending):
    """Fetches one step's metrics (waiting for that step only), checks and adds them."""
    i, step_before, metrics = pending
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    _check_finite(values, step_before, committed)
    for k, v in values.items():
      totals["sums"][k] = totals["sums"].get(k, 0.0) + v
    totals["count"] += 1
    progress.update(i, values["loss"])
    if (i + 1) % exp.config.train.log_every_steps == 0:
      tb.scalars(step_before + 1, values, "train/")

  pending = None
  for i in range(start, streams.train.steps_per_epoch):
    state, metrics = exp.train_step_on(state, next(it), next(unlabeled) if unlabeled else None)
    if pending is not None:
      take_in(pending)
    pending, step = (i, step, metrics), step + 1
    if preemption.requested and i + 1 < streams.train.steps_per_epoch:
      take_in(pending)
      meta["iterator"] = it.get_state()
      meta["partial"] = totals
      progress.close()
      return state, {}, True
  if pending is not None:
    take_in(pending)
  progress.close()
  return state, {k: v / max(totals["count"], 1) for k, v in totals["sums"].items()}, False


def _end_of_epoch(exp, ckpts, state, meta, train_means, tb):
  """Validation, selection, early-stopping bookkeeping and the epoch's checkpoints: best/
  (if the epoch improved), then ckpt/, then the commit (checkpoint.py)."""
  cfg = exp.config.train
  val, _ = experiment.evaluate(exp, state.params, "valid")
  epoch, step = meta["epoch"], int(state.step)
  value = val[cfg.select_metric]
  improved = _better(value, meta["best"], cfg.select_mode)
  if improved:
    meta.update(best=value, best_epoch=epoch + 1, stale_epochs=0)
  else:
    meta["stale_epochs"] += 1
  entry = {"epoch": epoch + 1, "step": step, "train": train_means, "valid": val,
           "selected": improved}
  if exp.config.diagnostics.enabled:
    entry["valid_losses"], entry["valid_latents"] = report.epoch_diagnostics(
        exp, state.params, "valid")
    tb.scalars(epoch + 1, entry["valid_losses"], "valid_losses/")
    tb.scalars(epoch + 1, {f"{kind}/{z}": v for kind, per in entry["valid_latents"].items()
                           for z, v in per.items()}, "valid_latents/")
  meta["history"].append(entry)
  meta.update(epoch=epoch + 1, iterator=None, partial=None)
  meta["done"] = meta["epoch"] >= cfg.epochs or meta["stale_epochs"] >= cfg.patience
  save_points.reached("epoch_validated")
  if improved:
    ckpts.save_best(step, state.params, {"epoch": epoch + 1, "valid": val})
  ckpts.save_latest(step, state, meta)
  ckpts.commit(step, meta)
  tb.scalars(epoch + 1, val, "valid/")
  logging.info("epoch %d: valid %s %.4f (best %.4f at epoch %s)%s", epoch + 1,
               cfg.select_metric, value, meta["best"] if meta["best"] is not None else np.nan,
               meta["best_epoch"], " *" if improved else "")


def _finish(exp, ckpts, workdir: pathlib.Path, meta, score_test: bool) -> dict:
  """Scores the test split once, on the selected checkpoint; writes results and predictions.
  Without `score_test` (a sweep trial) the test split stays sealed: results.json holds the
  validation metrics and the diagnostics of the validation split."""
  if meta["best_epoch"] is None:
    raise FloatingPointError("no epoch had a finite validation "
                             f"{exp.config.train.select_metric}: nothing to select")
  selected = checkpoint.best_step(meta)
  params = ckpts.restore_best_params(exp.abstract_state().params, selected)
  valid = ckpts.best_meta(selected)["valid"]
  results = {"selected_epoch": meta["best_epoch"], "epochs_run": meta["epoch"],
             "select_metric": exp.config.train.select_metric, "valid": valid}
  if not score_test:
    if exp.config.diagnostics.enabled:
      results.update(report.final(exp, params, meta["history"], workdir, split="valid"))
    if jax.process_index() == 0:
      outputs.atomic_write(workdir / "results.json", outputs.dumps(results))
    return results
  test, (preds, labels, ids) = experiment.evaluate(exp, params, "test")
  results["test"] = test
  if exp.config.diagnostics.enabled:
    results.update(report.final(exp, params, meta["history"], workdir))
  if exp.config.train.report_probes:
    splits = _in_memory(exp.streams.sources)
    results["probes_test"] = {
        name: metrics_lib.all_metrics(pred, splits["test"]["label"],
                                      dataset=exp.config.data.metric_dataset)
        for name, pred in probes.test_predictions(splits).items()}
  save_points.reached("test_scored")
  if jax.process_index() == 0:
    outputs.write_prediction_rows(workdir / "predictions.csv",
                                    [("test", i, y, p) for i, y, p in zip(ids, labels, preds)])
    save_points.reached("predictions_written")
    outputs.atomic_write(workdir / "results.json", outputs.dumps(results))
    save_points.reached("results_written")
  return results


def _in_memory(sources) -> dict:
  """The labelled splits as canonical arrays (for the probes)."""
  return {name: input_pipeline.read_rows(sources[name], range(len(sources[name])))
          for name in ("train", "valid", "test")}


@contextlib.contextmanager
def claimed(config, workdir: pathlib.Path, multiseed: bool = False):
  """Holds `workdir` for one training (or, with `multiseed`, a whole protocol): its lock
  taken, `train.restart` carried out and the config recorded as the workdir's identity
  (another config's workdir is refused), all by the first process; the others of a
  multi-host run wait until it has."""
  workdir.mkdir(parents=True, exist_ok=True)
  first = jax.process_index() == 0
  with workdir_lock.hold(workdir, enabled=first):
    if first:
      restart.apply(config.train.restart, workdir, multiseed=multiseed)
      outputs.record_config(config, workdir, workdir_lib.holds_progress(workdir))
    if jax.process_count() > 1:  # The others read the workdir once the first has set it up.
      multihost_utils.sync_global_devices(
          f"mird_jax: {'multi-seed ' if multiseed else ''}workdir ready")
    yield


def train_and_evaluate(config, workdir, mesh=None, *, score_test: bool = True,
                       on_epoch=None) -> dict:
  """Trains, selects on validation, scores test; `mesh` defaults to every device. The config
  is one that main.check has validated.

  `score_test` False seals the test split (a sweep trial: _finish). `on_epoch(history,
  done)`, if given, is called with the validated epochs and whether training is over,
  after each epoch is committed and once on resuming (so that a caller killed after a
  commit sees that epoch); whatever it raises stops the run there, committed at that
  epoch.
  """
  workdir = pathlib.Path(workdir)
  with claimed(config, workdir):
    save_points.reached("config_written")
    exp = experiment.build(config, workdir, mesh=mesh)
    if not score_test:
      exp.streams.sealed = ("test",)
    ckpts = checkpoint.Checkpoints(workdir, config.train.keep_checkpoints)
    try:
      return _run(exp, ckpts, workdir, score_test, on_epoch or (lambda history, done: None))
    finally:
      ckpts.close()


def _run(exp, ckpts, workdir: pathlib.Path, score_test: bool, on_epoch) -> dict:
  """The epochs from the committed step (or the start) to the end, then the test split."""
  restored = ckpts.resume(exp.abstract_state())
  state, meta = restored if restored else (exp.initial_state(), _fresh_meta())
  if restored:
    logging.info("resuming from step %d (epoch %d)", int(state.step), meta["epoch"] + 1)
    if jax.process_index() == 0:  # A kill between a commit and this file's rewrite.
      outputs.write_history(workdir, meta["history"])
    on_epoch(meta["history"], meta["done"])
  tb = outputs.TensorBoard(workdir / "tensorboard", jax.process_index() == 0)
  preemption = _Preemption()
  try:
    while not meta["done"]:
      state, train_means, preempted = _train_epoch(exp, state, meta, preemption, tb,
                                                   ckpts.committed_text())
      if preempted:
        ckpts.save_latest(int(state.step), state, meta)
        ckpts.commit(int(state.step), meta)
        logging.warning("SIGTERM: saved step %d mid-epoch; run the same command to resume",
                        int(state.step))
        sys.exit(143)
      _end_of_epoch(exp, ckpts, state, meta, train_means, tb)
      if jax.process_index() == 0:
        outputs.write_history(workdir, meta["history"])
      save_points.reached("history_written")
      on_epoch(meta["history"], meta["done"])
    experiment.log_step_shapes(exp)
    return _finish(exp, ckpts, workdir, meta, score_test)
  finally:
    preemption.restore()
    tb.close()
