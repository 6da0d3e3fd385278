"""What every parity fixture records of where it came from (imported by the make_*.py
scripts beside it, which run by hand, with this folder first on their path)."""

import pathlib
import subprocess
import sys

import numpy as np


def meta(checkout) -> dict[str, np.ndarray]:
  """The public checkout's commit and the exact command that wrote the fixture."""
  commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
  command = " ".join([pathlib.Path(sys.argv[0]).name, *sys.argv[1:]])
  return {"meta/commit": np.array(commit), "meta/command": np.array(command)}
