"""Unpickling data files without letting them run code.

A pickle is a small program: each global it names is imported and may be called with
arguments the file chooses (`os.system`, `builtins.eval`, ...). The feature files of this
field (MMSA, MIRD, MAG-BERT / MIB) hold only dicts, lists, tuples, strings, numbers and
numpy arrays, so `load` admits exactly the globals those need and refuses any other before
it is imported, in one line naming the file and the global.
"""

import io
import pickle

# (module, name) -> the object it stands for. numpy 1.x pickles name numpy.core, numpy 2
# names numpy._core: both resolve to numpy 2's objects, without importing the deprecated
# alias.
import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric
import _codecs

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,  # Protocol-2 pickles store array bytes as str.
    ("collections", "OrderedDict"): dict,
}
# Python 2 and protocol-2 pickles name the builtins module __builtin__.
for _builtins in ("builtins", "__builtin__"):
  for _type in (set, frozenset, bytearray, complex):
    _ALLOWED[(_builtins, _type.__name__)] = _type
for _core in ("numpy.core", "numpy._core"):
  _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _multiarray._reconstruct  # pylint: disable=protected-access
  _ALLOWED[(f"{_core}.multiarray", "scalar")] = _multiarray.scalar
  _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer  # pylint: disable=protected-access
# numpy 2 pickles a dtype's class as numpy.dtypes.<Name>DType: allowed, being dtypes.
for _name in dir(np.dtypes):
  if _name.endswith("DType"):
    _ALLOWED[("numpy.dtypes", _name)] = getattr(np.dtypes, _name)

WHAT_IS_ADMITTED = ("numpy arrays, scalars and dtypes, dicts, lists, tuples, sets, strings, "
                    "bytes and numbers")


class RefusedGlobal(pickle.UnpicklingError):
  """The pickle names a global that a data file does not need."""

  def __init__(self, module: str, name: str):
    super().__init__(f"{module}.{name}")
    self.qualified = f"{module}.{name}"


class _Unpickler(pickle.Unpickler):

  def find_class(self, module, name):
    found = _ALLOWED.get((module, name))
    if found is None:
      raise RefusedGlobal(module, name)
    return found

  def persistent_load(self, pid):
    raise pickle.UnpicklingError(f"persistent id {pid!r}: data files have none")


def loads(data: bytes, encoding: str = "ASCII"):
  """Unpickles bytes, admitting only the globals of data files (RefusedGlobal otherwise)."""
  return _Unpickler(io.BytesIO(data), encoding=encoding).load()


def load(f, encoding: str = "ASCII"):
  """Unpickles an open binary file, admitting only the globals of data files."""
  return _Unpickler(f, encoding=encoding).load()
