"""The error a run stops with when it cannot go on for a reason the user can act on.

run.py prints its message as one line; the message says what is wrong, where, and what to
do. Nothing already written (checkpoints, results, user files) has been changed by the
time it is raised.
"""


class RunError(RuntimeError):
  """A run cannot go on; the message is one line naming the file or key and the remedy."""
