"""Named moments between the writes a training makes to its workdir, where a test can stop it.

A kill at any moment leaves the workdir as it was at the last point passed (every write
in between is atomic: a temp file renamed, or an Orbax step finalised by a rename), so
pausing at each point and copying the workdir gives every state a kill can leave
(tests/runs/test_train_and_resume.py). With MIRD_JAX_PAUSE_AT=DIR in the environment, the
process writes DIR/<n>.<point> and stops itself (SIGSTOP) until the test sends SIGCONT;
in process, a test may set `observer` to a function of the point's name. Neither is ever
set outside the tests, and then `reached` costs one dictionary lookup.
"""

import itertools
import os
import pathlib
import signal
from typing import Callable

ENV = "MIRD_JAX_PAUSE_AT"
observer: Callable[[str], None] | None = None
_count = itertools.count()


def reached(point: str) -> None:
  if observer is not None:
    observer(point)
  pause_dir = os.environ.get(ENV)
  if pause_dir:
    pathlib.Path(pause_dir, f"{next(_count):03d}.{point}").write_text("")
    os.kill(os.getpid(), signal.SIGSTOP)
