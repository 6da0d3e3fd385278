"""Run outputs in the workdir: config.json, metrics.jsonl, results.json, predictions.csv and
TensorBoard events. Every file is written atomically (temp file, then rename), so a crash
never leaves a half-written one."""

import csv
import io
import itertools
import json
import math
import os
import pathlib

import ml_collections

from mird_jax import config_check


def atomic_write(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def _jsonable(value):
  if isinstance(value, float) and not math.isfinite(value):
    return None  # NaN Corr of a constant prediction: JSON null, not invalid JSON.
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  return value


def dumps(obj) -> str:
  return json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n"


# Keys that are not what the run is, so a rerun may change them (and a workdir written
# before they existed still resumes): how to start, a check on the input (data that
# passes it trains the same), how many seeds a multi-seed protocol runs (raising it
# extends one), and the sweep settings, which no run reads.
NOT_IDENTITY = ("train.restart", "data.max_abs_feature", "num_seeds", "sweep", "robustness")


def identity(config_dict: dict, not_identity: tuple = NOT_IDENTITY) -> dict:
  """The part of a config (as a dict) that is what the run is (record_config compares it)."""
  out = json.loads(json.dumps(config_dict))
  for dotted in not_identity:
    *parents, leaf = dotted.split(".")
    node = out
    for p in parents:
      node = node.get(p, {})
    node.pop(leaf, None)
  return out


def record_config(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                  holds_progress: bool, not_identity: tuple = NOT_IDENTITY) -> None:
  """Writes config.json, or checks that a resumed run has the same config.

  A different config in a workdir that holds progress (a committed step, a checkpoint or
  results) stops the run before anything is touched: those belong to the other config. A
  workdir where no run got that far (it failed on its data, or was killed before its
  first checkpoint) takes the new config. `not_identity`: the dotted keys left out of the
  comparison (a sweep's own list keeps its sweep settings in).
  """
  path = workdir / "config.json"
  current = json.loads(json.dumps(config.to_dict()))
  if path.exists():
    try:
      previous = json.loads(path.read_text())
    except ValueError:
      previous = None
    same = lambda d: identity(d, not_identity)
    if previous is not None and same(previous) == same(current):
      return
    if holds_progress:
      diff = (sorted(_diff(same(previous), same(current))) if previous is not None
              else ["(config.json cannot be read)"])
      raise config_check.ConfigError(
          f"{workdir} holds a run with a different config (changed: {', '.join(diff[:8])}); "
          "use a new --workdir, the same config, or --config.train.restart=from_scratch to "
          "move the old run aside")
  atomic_write(path, dumps(current))


def _diff(a, b, prefix=""):
  for key in set(a) | set(b):
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      yield from _diff(va, vb, f"{prefix}{key}.")
    elif va != vb:
      yield f"{prefix}{key}"


def write_history(workdir: pathlib.Path, history: list[dict]) -> None:
  atomic_write(workdir / "metrics.jsonl",
               "".join(json.dumps(_jsonable(h), sort_keys=True) + "\n" for h in history))


def write_prediction_rows(path: pathlib.Path, rows) -> None:
  """rows of (split, id, label, prediction); unlabelled examples carry label 0."""
  buf = io.StringIO()
  writer = csv.writer(buf)
  writer.writerow(["id", "split", "label", "prediction"])
  for split, i, y, p in rows:
    writer.writerow([i, split, f"{float(y):.6g}", f"{float(p):.6g}"])
  atomic_write(path, buf.getvalue())


_WRITERS = itertools.count()


class TensorBoard:
  """Scalar summaries as TensorBoard event files (tensorboardX: no TensorFlow needed)."""

  def __init__(self, logdir: pathlib.Path, enabled: bool):
    self._writer = None
    if enabled:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      # A writer of its own in the name (process id, writer count): a resumed run that
      # starts within the second of the previous writer would otherwise truncate its file
      # (the name has whole seconds), and with it the history runs/timing.py reads.
      self._writer = tensorboardX.SummaryWriter(
          str(logdir), filename_suffix=f".{os.getpid()}.{next(_WRITERS)}")

  def scalars(self, step: int, values: dict, prefix: str = "") -> None:
    if self._writer is None:
      return
    for k, v in values.items():
      if isinstance(v, (int, float)) and math.isfinite(v):
        self._writer.add_scalar(prefix + k, v, step)
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
