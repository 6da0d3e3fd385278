"""Orbax checkpoints under the workdir: `ckpt/` (latest, every epoch and on SIGTERM) and
`best/` (params of the best validation epoch).

Each latest checkpoint holds the whole TrainState plus a JSON `meta` (epoch, mid-epoch
iterator state, best-so-far, history), which is all a restart needs to continue exactly.
Restores take abstract targets with the current mesh's shardings, so a checkpoint written
on 8 devices restores on 1 and vice versa. Resume priority: the workdir's latest readable
checkpoint, else a fresh start.
"""

import pathlib

from absl import logging
import jax
import orbax.checkpoint as ocp


def _manager(directory: pathlib.Path, keep: int) -> ocp.CheckpointManager:
  # Synchronous saves: a checkpoint is complete on disk before training goes on, which is
  # what a SIGTERM handler or a crash right after needs.
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options)


def _to_save(tree):
  """What a save writes: on one process every shard is local, so host copies, which Orbax
  writes in half the CPU time of jax.Arrays (its per-array sharding bookkeeping dominates
  for a state of some 700 small leaves). Restores take shardings from their target either
  way. Several processes save their own shards of the jax.Arrays."""
  return jax.device_get(tree) if jax.process_count() == 1 else tree


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (a restore target)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpoints:

  def __init__(self, workdir, keep: int):
    workdir = pathlib.Path(workdir).absolute()
    self.latest = _manager(workdir / "ckpt", keep)
    self.best = _manager(workdir / "best", 1)

  def save_latest(self, step: int, state, meta: dict) -> None:
    self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_save(state)),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
    self.latest.wait_until_finished()

  def restore_latest(self, abstract_state):
    """(state, meta) of the newest readable checkpoint, or None. A checkpoint that fails to
    restore (corrupt, partial) is skipped with a warning and the one before it is tried."""
    for step in sorted(self.latest.all_steps(), reverse=True):
      try:
        restored = self.latest.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]
      except Exception as e:  # pylint: disable=broad-except  # Any unreadable checkpoint.
        logging.warning("checkpoint %s/%d cannot be restored (%s: %s); trying an older one",
                        self.latest.directory, step, type(e).__name__, str(e)[:300])
    return None

  def save_best(self, step: int, params, meta: dict) -> None:
    self.best.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(_to_save(params)),
                                                 meta=ocp.args.JsonSave(meta)), force=True)
    self.best.wait_until_finished()

  def restore_best_params(self, abstract_params):
    step = self.best.latest_step()
    if step is None:
      raise FileNotFoundError(f"{self.best.directory}: no best checkpoint to restore")
    return self.best.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params)))["params"]

  def restore_state_at(self, step: int, abstract_state):
    if step not in self.latest.all_steps():
      raise FileNotFoundError(f"{self.latest.directory}: no checkpoint at step {step} "
                              f"(have {sorted(self.latest.all_steps())})")
    return self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))["state"]

  def best_meta(self) -> dict | None:
    step = self.best.latest_step()
    if step is None:
      return None
    return self.best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def close(self) -> None:
    self.latest.close()
    self.best.close()
