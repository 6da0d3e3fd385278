"""One training per workdir at a time: an advisory lock (flock) on DIR/workdir.lock; and
the same kind of lock for the sweep's trials and its claims (try_hold, exclusive).

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
  fd = try_hold(path, "nothing stops a second training in this workdir")
  if fd is None:
    holder = path.read_text().strip() or "another process"
    raise WorkdirBusy(f"{path.parent} is in use by another training ({holder}); wait for it "
                      "to end or stop it, or use another --workdir")
  try:
    yield
  finally:
    os.close(fd)  # Releases the lock.


def try_hold(path, without_locks: str = "nothing can tell a live holder from a dead one"
             ) -> int | None:
  """Takes the lock on the file `path` (made if missing) without waiting: its descriptor,
  held until os.close, with the holder written into the file; None when another process
  holds it. Where the file system has no locks, the descriptor, with a warning that says
  `without_locks` (what that leaves unprotected)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    return None
  except OSError as e:
    if e.errno not in _NO_LOCKS:
      os.close(fd)
      raise
    logging.warning("%s: this file system has no locks (%s); %s", path, e, without_locks)
    return fd
  os.ftruncate(fd, 0)
  os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
               f"{datetime.datetime.now().isoformat(timespec='seconds')}\n".encode())
  return fd


@contextlib.contextmanager
def exclusive(path):
  """Holds the lock on the file `path` for the block, waiting for it as long as another
  process holds it (a short critical section shared by the processes of a sweep)."""
  path = pathlib.Path(path)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as e:
      if e.errno not in _NO_LOCKS:
        raise
      logging.warning("%s: this file system has no locks (%s); workers sharing it may run "
                      "more trials than asked", path, e)
    yield
  finally:
    os.close(fd)
