"""A finished run's wall time and train speed, read back from its TensorBoard event files.

Every process that trains a run opens one event file (train.py) before it compiles, and
stamps each record with the wall clock: "train/" scalars every `train.log_every_steps`
steps, "valid/" ones after each epoch's validation. So the files already say, for every run
ever made, what a user planning a run needs:

- `train_minutes`: the summed span of each file, from the writer's start to its last record
  (compiles, training and validation; not the data build before it, nor the final test
  scoring and diagnostics after it; the time a killed process spent past its last record
  is lost work, and not counted);
- `steps_per_s`: the median rate over consecutive train records of one epoch, leaving out
  each process's first epoch (whose steps pay for the compiles);
- `processes`: how many processes trained it (more than 1: it was resumed).

Only the record framing is parsed here (no CRC check): a file cut short by a kill ends at
its last whole record.
"""

import pathlib
import statistics
import struct

# What the figures measure, in the words every table of them prints (summary.md, compare).
MEASURES = ("minutes from the event writer's start to the last validation "
            "(compiles included; data build and final test scoring not), median train "
            "steps/s after each process's first epoch, and the processes that trained it "
            "(more than 1: resumed)")

_HEADER = struct.Struct("<QI")  # Record length, then its masked CRC; the data, a data CRC.


def _records(path: pathlib.Path):
  """The (wall_time, step, tags) of each event in one file, in order."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  data, i = path.read_bytes(), 0
  while i + _HEADER.size <= len(data):
    (length, _), start = _HEADER.unpack_from(data, i), i + _HEADER.size
    if start + length + 4 > len(data):
      break
    event = event_pb2.Event.FromString(data[start:start + length])
    yield event.wall_time, event.step, {v.tag for v in event.summary.value}
    i = start + length + 4


def _file(path: pathlib.Path) -> tuple[float, list[float]]:
  """One process's span in seconds, and the rates of its train record pairs after its
  first validation."""
  records = list(_records(path))
  if not records:
    return 0.0, []
  rates, previous, validated = [], None, False
  for wall, step, tags in records:
    if any(t.startswith("valid/") for t in tags):
      validated, previous = True, None  # An epoch boundary: the next pair starts afresh.
    elif "train/loss" in tags:
      if validated and previous is not None and wall > previous[0] and step > previous[1]:
        rates.append((step - previous[1]) / (wall - previous[0]))
      previous = (wall, step)
  return records[-1][0] - records[0][0], rates


def read(run_dir) -> dict:
  """{train_minutes, steps_per_s, processes} of the run in `run_dir`, or {} where it has no
  event file (steps_per_s is left out where no epoch after a process's first has a pair)."""
  files = sorted(pathlib.Path(run_dir, "tensorboard").glob("events.out.tfevents.*"))
  if not files:
    return {}
  spans, rates = zip(*(_file(f) for f in files))
  out = {"train_minutes": sum(spans) / 60.0, "processes": len(files)}
  pooled = [r for per_file in rates for r in per_file]
  if pooled:
    out["steps_per_s"] = statistics.median(pooled)
  return out
