"""Orbax checkpoints under the workdir and the record that says which of them count.

  ckpt/<step>/    latest: the whole TrainState plus a JSON `meta` (epoch, mid-epoch iterator
                  state, best-so-far, history): all a restart needs to continue exactly.
                  The state's leaves are packed into one flat array per dtype (`state`),
                  with their paths, shapes and dtypes in `layout`: Orbax spends about a
                  millisecond of CPU on every leaf it writes, 0.9 s a save for the ~700
                  small leaves of a smoke-size state, 0.05 s packed. (Checkpoints written
                  unpacked, by earlier versions, still restore.)
  best/<step>/    params of a selected epoch, with {"epoch", "valid"}.
  progress.json   the commit record: the newest step whose ckpt/ and best/ are complete,
                  and, for each kept latest checkpoint, the best step it selected.

At an epoch's end the run saves best/<S> (if the epoch improved), then ckpt/<S>, then
commits S, then prunes best/ to the steps the kept checkpoints refer to. Each Orbax save
is finalised by a rename and the record is replaced atomically, so a kill anywhere leaves
one of a few states, and `resume` continues from each of them to the same results:
uncommitted best steps (newer than the checkpoint resumed) are dropped and saved again;
a committed best step that is missing is saved again from the checkpoint that holds its
params. The run never falls back past the committed step on its own: if that checkpoint
is missing or unreadable, `resume` stops in one line naming it and the ways on
(mird_jax/runs/restart.py), and nothing is touched.

Restores take abstract targets with the current mesh's shardings, so a checkpoint written
on 8 devices restores on 1 and vice versa.
"""

import pathlib
import shutil

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from mird_jax.runs import errors
from mird_jax.runs import outputs
from mird_jax.runs import save_points
from mird_jax.runs import workdir as workdir_lib

_DELETED = "deleted"  # Orbax renames a deleted step in here (atomic); purged right after.


class CheckpointError(errors.RunError):
  """A checkpoint cannot be written or read; the message says which and what to do."""


def _manager(directory: pathlib.Path, keep: int | None, writable: bool):
  if not writable:  # eval and predict: never touch a directory a training may be writing.
    return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
        read_only=True, create=False))
  # Synchronous saves: a checkpoint is complete on disk before training goes on, which is
  # what a SIGTERM handler or a crash right after needs. A writer holds the workdir's lock
  # (workdir_lock.py), so the temp folders of an interrupted save are its own to clean.
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=False,
      cleanup_tmp_directories=True, todelete_subdir=_DELETED))


def _to_save(tree):
  """What a save writes: on one process every shard is local, so host copies, which Orbax
  writes in half the CPU time of jax.Arrays (its per-array sharding bookkeeping dominates
  for a state of some 700 small leaves). Restores take shardings from their target either
  way. Several processes save their own shards of the jax.Arrays."""
  return jax.device_get(tree) if jax.process_count() == 1 else tree


def _host_leaves(tree) -> list[np.ndarray]:
  """The leaves of a replicated tree as host arrays (one replica: every process holds the
  whole state)."""
  return [np.asarray(x.addressable_shards[0].data) if isinstance(x, jax.Array) else
          np.asarray(x) for x in jax.tree.leaves(tree)]


def _leaf_layout(tree) -> list[list]:
  """[path, shape, dtype] of each leaf of `tree` (arrays or ShapeDtypeStructs), in order."""
  return [[jax.tree_util.keystr(path), list(np.shape(x)), np.dtype(x.dtype).name]
          for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def pack(tree) -> tuple[dict[str, np.ndarray], list[list]]:
  """({dtype name: the leaves of that dtype, flattened and concatenated in tree order},
  the layout that `unpack` needs)."""
  layout, leaves = _leaf_layout(tree), _host_leaves(tree)
  packed = {}
  for dtype in sorted({d for _, _, d in layout}):
    parts = [x.ravel() for x, (_, _, d) in zip(leaves, layout) if d == dtype]
    packed[dtype] = np.concatenate(parts) if parts else np.zeros((0,), dtype)
  return packed, layout


def unpack(packed: dict[str, np.ndarray], layout: list[list], abstract):
  """`abstract`'s tree with the leaves cut back out of `packed`, as host arrays. The
  layout must be the abstract tree's own: a state of other paths, shapes or dtypes is
  refused, naming the first leaf that differs."""
  want = _leaf_layout(abstract)
  if want != layout:
    diff = next((f"{w} != {h}" for w, h in zip(want, layout) if w != h),
                f"{len(layout)} leaves, expected {len(want)}")
    raise ValueError(f"the checkpoint's state has another layout: {diff}")
  offsets = dict.fromkeys(packed, 0)
  leaves = []
  for _, shape, dtype in layout:
    size = int(np.prod(shape))
    leaves.append(packed[dtype][offsets[dtype]:offsets[dtype] + size].reshape(shape))
    offsets[dtype] += size
  return jax.tree.unflatten(jax.tree.structure(abstract), leaves)


def abstract_like(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (a restore target)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def best_step(meta: dict) -> int | None:
  """The step of the epoch `meta` selected (its history entry), or None before any."""
  for entry in meta["history"]:
    if entry["epoch"] == meta["best_epoch"]:
      return int(entry["step"])
  return None


def _restore(manager, step: int, abstract, name: str, with_meta: bool = False) -> dict:
  """{name: `abstract` restored at `step`, placed with its shardings} (and "meta"). On one
  process the arrays are read into host memory and placed in one transfer: a third less
  time than Orbax placing ~700 small leaves one by one."""
  single = jax.process_count() == 1
  target = (jax.tree.map(lambda x: np.empty(x.shape, x.dtype), abstract) if single else
            abstract)
  items = {name: ocp.args.StandardRestore(target)}
  if with_meta:
    items["meta"] = ocp.args.JsonRestore()
  restored = dict(manager.restore(step, args=ocp.args.Composite(**items)))
  if single:
    restored[name] = jax.device_put(restored[name],
                                    jax.tree.map(lambda x: x.sharding, abstract))
  return restored


def _reason(e: BaseException) -> str:
  lines = [line for line in str(e).splitlines() if line.strip()] or [""]
  return f"{type(e).__name__}: {lines[0].strip()[:200]}"


class Checkpoints:
  """The workdir's latest and best checkpoints and their commit record. `writable` False
  opens them read-only (eval, predict)."""

  def __init__(self, workdir, keep: int, writable: bool = True):
    self.workdir = pathlib.Path(workdir).absolute()
    self.latest = _manager(self.workdir / "ckpt", keep, writable)
    self.best = _manager(self.workdir / "best", None, writable)  # Pruned by `commit`.
    self._record = workdir_lib.read_progress(self.workdir) if writable else None

  # Saving.
  def _save(self, manager, step: int, **items) -> None:
    args = ocp.args.Composite(**{k: (ocp.args.JsonSave(v) if k in ("meta", "layout") else
                                     ocp.args.StandardSave(_to_save(v)))
                                 for k, v in items.items()})
    try:
      manager.save(step, args=args, force=True)
      manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except  # A full disk, a dead mount.
      raise CheckpointError(
          f"cannot write checkpoint {manager.directory}/{step} ({_reason(e)}); the run is "
          f"committed up to {self.committed_text()}: free space or fix the cause, then run "
          "the same command to resume") from e

  def save_best(self, step: int, params, meta: dict) -> None:
    self._save(self.best, step, params=params, meta=meta)
    save_points.reached("best_saved")

  def save_latest(self, step: int, state, meta: dict) -> None:
    packed, layout = pack(state)
    self._save(self.latest, step, state=packed, layout=layout, meta=meta)
    save_points.reached("latest_saved")

  def committed_text(self) -> str:
    return (f"step {self._record['step']} ({self.workdir / 'ckpt' / str(self._record['step'])})"
            if self._record else "no step (no checkpoint yet)")

  def commit(self, step: int, meta: dict) -> None:
    """Records ckpt/<step> (saved) as the one to resume from, then drops the best steps
    that no kept checkpoint refers to."""
    selected = best_step(meta)
    kept = dict((self._record or {}).get("kept", {}), **{str(step): selected})
    kept = {s: b for s, b in kept.items() if int(s) in self.latest.all_steps()}
    self._record = {"step": step, "epoch": meta["epoch"], "done": meta["done"],
                    "best_step": selected, "kept": kept}
    if jax.process_index() == 0:
      outputs.atomic_write(self.workdir / workdir_lib.PROGRESS, outputs.dumps(self._record))
    save_points.reached("committed")
    self._prune_best(keep={b for b in kept.values() if b is not None})

  def _prune_best(self, keep) -> None:
    for s in self.best.all_steps():
      if s not in keep:
        self.best.delete(s)
    self._purge_deleted()

  def _purge_deleted(self) -> None:
    if jax.process_index() == 0:
      for manager in (self.latest, self.best):
        shutil.rmtree(pathlib.Path(manager.directory) / _DELETED, ignore_errors=True)

  # Resuming.
  def _restore_latest_at(self, step: int, abstract_state):
    if not (pathlib.Path(self.latest.directory) / str(step) / "layout").is_dir():
      restored = _restore(self.latest, step, abstract_state, "state", with_meta=True)
      return restored["state"], restored["meta"]  # Written unpacked (earlier versions).
    layout = self.latest.restore(step, args=ocp.args.Composite(
        layout=ocp.args.JsonRestore()))["layout"]
    sizes = {}
    for _, shape, dtype in layout:
      sizes[dtype] = sizes.get(dtype, 0) + int(np.prod(shape))
    target = {d: np.empty((n,), d) for d, n in sizes.items()}
    restored = dict(self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())))
    state = unpack(restored["state"], layout, abstract_state)
    return jax.device_put(state, jax.tree.map(lambda x: x.sharding, abstract_state)), \
        restored["meta"]

  def resume(self, abstract_state):
    """(state, meta) of the checkpoint to continue from, or None when nothing is committed
    (a fresh start; best steps an uncommitted first epoch left are dropped). Checkpoints
    newer than the committed step (saved, the commit not yet written) are tried first."""
    steps = sorted(self.latest.all_steps(), reverse=True)
    floor = self._record["step"] if self._record else (steps[0] if steps else None)
    if floor is None:
      if (self.workdir / "results.json").exists():
        raise CheckpointError(
            f"{self.workdir} holds results.json but no checkpoint to resume from; run with "
            "--config.train.restart=from_scratch to move the old run aside and train again")
      self._prune_best(keep=set())
      return None
    for step in (s for s in steps if s >= floor):
      try:
        state, meta = self._restore_latest_at(step, abstract_state)
      except Exception as e:  # pylint: disable=broad-except  # Any unreadable checkpoint.
        if step == floor:
          raise self._unreadable(floor, _reason(e)) from e
        logging.warning("checkpoint %s/%d (saved after the last commit) cannot be restored "
                        "(%s); resuming from the committed step %d", self.latest.directory,
                        step, _reason(e), floor)
        continue
      self._reconcile_best(step, state, meta, abstract_state)
      if not self._record or self._record["step"] != step:  # Saved, its commit not written.
        kept = dict((self._record or {}).get("kept", {}), **{str(step): best_step(meta)})
        self._record = {"step": step, "kept": kept}
      return state, meta
    raise self._unreadable(floor, "it is missing")

  def _unreadable(self, step: int, why: str) -> CheckpointError:
    older = [s for s in self.latest.all_steps() if s < step]
    ways = (f"resume from an older one with --config.train.restart={older[-1]} (kept: "
            f"{older}), or " if older else "")
    return CheckpointError(
        f"checkpoint {self.latest.directory}/{step}, the last the run committed, cannot be "
        f"restored ({why}); nothing was changed. To go on, {ways}start over with "
        "--config.train.restart=from_scratch (both move what they replace to "
        f"{self.workdir / 'discarded'})")

  def _reconcile_best(self, step: int, state, meta: dict, abstract_state) -> None:
    """best/ as it was when ckpt/<step> was committed: newer best steps dropped, the
    selected one saved again if a kill took it."""
    self._prune_best(keep={s for s in self.best.all_steps() if s <= step})
    selected = best_step(meta)
    if selected is None or selected in self.best.all_steps():
      return
    params = state.params if selected == step else self._kept_params(selected, step, meta,
                                                                     abstract_state)
    logging.warning("best/%d was missing: saved again from ckpt/%d", selected, selected)
    entry = next(h for h in meta["history"] if h["epoch"] == meta["best_epoch"])
    self._save(self.best, selected, params=params,
               meta={"epoch": meta["best_epoch"], "valid": entry["valid"]})

  def _kept_params(self, selected: int, step: int, meta: dict, abstract_state):
    """The params of ckpt/<selected>, which best/<selected> should have held."""
    try:
      return self._restore_latest_at(selected, abstract_state)[0].params
    except Exception as e:  # pylint: disable=broad-except  # Missing or unreadable.
      raise CheckpointError(
          f"{self.best.directory}/{selected}, the params of the epoch ckpt/{step} selected "
          f"(epoch {meta['best_epoch']}), is missing and no kept checkpoint holds them "
          f"({_reason(e)}); start over with --config.train.restart=from_scratch (moves this "
          f"run to {self.workdir / 'discarded'})") from e

  # Reading.
  def best_step_to_restore(self) -> int:
    """The selected step: the committed one, else (a run from before the record) the
    newest in best/."""
    steps = self.best.all_steps()
    record = self._record or workdir_lib.read_progress(self.workdir) or {}
    step = record.get("best_step") if record.get("best_step") in steps else max(steps,
                                                                               default=None)
    if step is None:
      raise FileNotFoundError(f"{self.best.directory}: no best checkpoint to restore")
    return step

  def restore_best_params(self, abstract_params, step: int | None = None):
    step = self.best_step_to_restore() if step is None else step
    try:
      return _restore(self.best, step, abstract_params, "params")["params"]
    except Exception as e:  # pylint: disable=broad-except  # Damaged or missing files.
      kept = sorted(self.latest.all_steps())
      hint = (f"; the latest states are kept in ckpt/ (steps {kept}): --step=N scores one"
              if kept else "")
      raise CheckpointError(f"checkpoint {self.best.directory}/{step} cannot be restored "
                            f"({_reason(e)}){hint}") from e

  def restore_state_at(self, step: int, abstract_state):
    if step not in self.latest.all_steps():
      raise FileNotFoundError(f"{self.latest.directory}: no checkpoint at step {step} "
                              f"(have {sorted(self.latest.all_steps())})")
    try:
      return self._restore_latest_at(step, abstract_state)[0]
    except Exception as e:  # pylint: disable=broad-except  # Damaged files.
      raise CheckpointError(f"checkpoint {self.latest.directory}/{step} cannot be restored "
                            f"({_reason(e)})") from e

  def best_meta(self, step: int) -> dict:
    return self.best.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"]

  def close(self) -> None:
    self.latest.close()
    self.best.close()
