"""One training per workdir at a time: an advisory lock (flock) on DIR/workdir.lock.

The kernel drops the lock when its process ends, however it ends, so a killed run never
leaves the workdir locked. The file itself stays; its text says who held it last. Where
the file system has no locks (some network and FUSE mounts), the run goes on unlocked
with a warning.
"""

import contextlib
import datetime
import errno
import fcntl
import os
import pathlib
import socket

from absl import logging

from mird_jax.runs import errors

NAME = "workdir.lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class WorkdirBusy(errors.RunError):
  """Another process holds the workdir."""


@contextlib.contextmanager
def hold(workdir, enabled: bool = True):
  """Holds DIR/workdir.lock for the block; raises WorkdirBusy if another process holds it.
  `enabled` False (processes other than the first of a multi-host run) takes no lock."""
  if not enabled:
    yield
    return
  path = pathlib.Path(workdir) / NAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    if _lock(fd, path):
      os.ftruncate(fd, 0)
      os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                   f"{datetime.datetime.now().isoformat(timespec='seconds')}\n".encode())
    yield
  finally:
    os.close(fd)  # Releases the lock.


def _lock(fd: int, path: pathlib.Path) -> bool:
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    holder = path.read_text().strip() or "another process"
    raise WorkdirBusy(f"{path.parent} is in use by another training ({holder}); wait for it "
                      "to end or stop it, or use another --workdir") from None
  except OSError as e:
    if e.errno not in _NO_LOCKS:
      raise
    logging.warning("%s: this file system has no locks (%s); nothing stops a second training "
                    "in this workdir", path, e)
    return False
