"""Data pickles load through the restricted unpickler: what the field's files hold loads, a
pickle that would run a command is refused before the command runs."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines import checks
from data_pipelines import readers
from data_pipelines import safe_pickle


class _RunsCommand:
  """Unpickling an instance calls os.system(command): what a hostile data file does."""

  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return os.system, (self.command,)


class _Evaluates:

  def __reduce__(self):
    return eval, ("1 + 1",)


def _field_like_objects():
  """What MMSA, MIRD and MAG-BERT files hold: dicts of numpy arrays (float, int, object
  strings, unicode), numpy scalars, lists of tuples of word lists and arrays."""
  rng = np.random.default_rng(0)
  split = {"audio": rng.normal(size=(3, 4, 2)).astype(np.float32),
           "vision": rng.normal(size=(3, 5, 2)), "audio_lengths": np.array([4, 2, 1]),
           "raw_text": np.array(["a b", "c", "d e f"], dtype=object),
           "id": np.array(["v_1", "v_2", "w_1"]), "regression_labels": np.float32([0.5, -1, 3]),
           "text_bert": np.zeros((3, 3, 4), np.float64), "n": np.int64(3), "ok": np.bool_(True)}
  mag = {"train": [((["good", "movie"], rng.normal(size=(2, 3)), rng.normal(size=(2, 2))),
                    np.array([[1.5]]), "v_1")], "dev": [], "test": []}
  return [{"train": split, "valid": split, "test": split}, mag, {"s": {1, 2}, "b": b"x",
                                                                "c": 1 + 2j, "none": None}]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_what_data_files_hold_loads_unchanged(protocol):
  for obj in _field_like_objects():
    back = safe_pickle.loads(pickle.dumps(obj, protocol=protocol))
    assert _same(back, obj)


def _same(a, b) -> bool:
  if isinstance(a, np.ndarray):
    return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
  if isinstance(a, (list, tuple)):
    return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
  return type(a) is type(b) and a == b


def test_a_pickle_that_would_run_a_command_is_refused_before_it_runs(tmp_path):
  marker = tmp_path / "ran"
  evil = tmp_path / "unaligned_50.pkl"
  payload = {"train": {"audio": _RunsCommand(f"touch {marker}")}}
  evil.write_bytes(pickle.dumps(payload, protocol=4))
  # The same bytes through the standard unpickler do run it (the test's premise):
  subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(evil)!r}, 'rb'))"],
                 check=True)
  assert marker.exists()
  marker.unlink()
  with pytest.raises(checks.DataError) as e:
    readers.read_labelled(evil, readers.ReadSpec())
  message = str(e.value)
  assert "\n" not in message
  assert str(evil) in message and f"'{os.system.__module__}.system'" in message
  assert not marker.exists()


def test_every_global_outside_the_data_types_is_refused(tmp_path):
  for i, obj in enumerate([_Evaluates(), {"x": _RunsCommand("true")}, [np.load]]):
    path = tmp_path / f"p{i}.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2 if i == 1 else 4))
    with pytest.raises(checks.DataError, match=r"refused: the pickle asks for the global "
                       r"'(builtins\.eval|posix\.system|numpy\.load)'"):
      checks.load_pickle(path)
