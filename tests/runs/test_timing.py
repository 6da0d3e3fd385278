"""A run's wall time and speed, read back from event files written in TensorBoard's format."""

import struct

import pytest
from tensorboardX import record_writer
from tensorboardX.proto import event_pb2
from tensorboardX.proto import summary_pb2

from mird_jax.runs import outputs
from mird_jax.runs import timing


def _write(path, events):
  """An event file of (wall_time, step, tag-or-None) records, framed as TensorBoard frames
  them; None is the file-version record every writer starts with."""
  out = bytearray()
  for wall, step, tag in events:
    event = event_pb2.Event(wall_time=wall, step=step)
    if tag is None:
      event.file_version = "brain.Event:2"
    else:
      event.summary.CopyFrom(summary_pb2.Summary(
          value=[summary_pb2.Summary.Value(tag=tag, simple_value=1.0)]))
    data = event.SerializeToString()
    header = struct.pack("<Q", len(data))
    out += header + struct.pack("<I", record_writer.masked_crc32c(header)) + data
    out += struct.pack("<I", record_writer.masked_crc32c(data))
  path.write_bytes(bytes(out))


def test_wall_time_and_speed_leave_out_each_processes_first_epoch(tmp_path):
  logdir = tmp_path / "tensorboard"
  logdir.mkdir()
  # Process 1: epoch 1 (its pair runs at 1 step/s: compiles), validation, then epoch 2 at
  # 2 steps/s; a validation metric other than valid/ ends no epoch.
  _write(logdir / "events.out.tfevents.1000.vm.1", [
      (1000.0, 0, None), (1100.0, 20, "train/loss"), (1100.0, 20, "train/lr/main"),
      (1120.0, 40, "train/loss"), (1125.0, 1, "valid_losses/task"),
      (1130.0, 1, "valid/MAE"), (1150.0, 65, "train/loss"), (1160.0, 85, "train/loss"),
      (1170.0, 2, "valid/MAE")])
  # Process 2 (resumed): its first epoch's pair (0.25 steps/s) is left out too, then 4
  # steps/s; a kill cut its last record short.
  _write(logdir / "events.out.tfevents.2000.vm.2", [
      (2000.0, 0, None), (2050.0, 105, "train/loss"), (2130.0, 125, "train/loss"),
      (2140.0, 3, "valid/MAE"), (2150.0, 150, "train/loss"), (2155.0, 170, "train/loss")])
  with open(logdir / "events.out.tfevents.2000.vm.2", "ab") as f:
    f.write(struct.pack("<QI", 64, 0) + b"\x08")
  got = timing.read(tmp_path)
  assert got["processes"] == 2
  assert got["train_minutes"] == pytest.approx((170.0 + 155.0) / 60.0)
  assert got["steps_per_s"] == pytest.approx(3.0)  # The median of 2 and 4 (with the first
  # epochs' pairs: 1.5).


def test_a_run_without_events_or_a_later_epoch_has_no_speed(tmp_path):
  assert not timing.read(tmp_path)
  (tmp_path / "tensorboard").mkdir()
  _write(tmp_path / "tensorboard" / "events.out.tfevents.1.vm.1",
         [(1.0, 0, None), (31.0, 20, "train/loss"), (61.0, 40, "train/loss")])
  assert timing.read(tmp_path) == {"train_minutes": 1.0, "processes": 1}


def test_two_writers_in_one_second_keep_both_files(tmp_path):
  """A resume within the second of the previous writer keeps the earlier history (the file
  name carries the writer's own count), and its wall time is read from its own records."""
  for _ in range(2):
    board = outputs.TensorBoard(tmp_path / "tensorboard", True)
    board.scalars(20, {"loss": 1.0}, "train/")
    board.close()
  assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2
  got = timing.read(tmp_path)
  assert got["processes"] == 2 and 0.0 <= got["train_minutes"] < 1.0
