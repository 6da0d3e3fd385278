"""Orbax checkpoints and their commit record: restore onto another device count, resume
from the committed step, refuse (never skip) a damaged committed one, keep best/ in step
with what was committed. Tiny states; the whole-run kill points are in
test_train_and_resume.py."""

import json

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mird_jax.runs import checkpoint
from mird_jax.training import sharding


@flax.struct.dataclass
class _State:
  params: dict
  step: jax.Array


def _state(mesh, scale=1.0):
  tree = _State(params={"w": jnp.arange(12.0).reshape(3, 4) * scale, "b": jnp.ones(5) * scale},
                step=jnp.array(7, jnp.int32))
  return jax.device_put(tree, sharding.replicated(mesh))


def _meta(epoch, best_epoch, steps):
  """A train loop's meta after `epoch` epochs ending at `steps`, `best_epoch` selected."""
  return {"epoch": epoch, "best_epoch": best_epoch, "done": False,
          "history": [{"epoch": e + 1, "step": s, "valid": {"MAE": 1.0 / (e + 1)}}
                      for e, s in enumerate(steps)]}


def _epoch_end(ckpts, step, state, meta, improved):
  """What the train loop writes at an epoch's end, in its order."""
  if improved:
    ckpts.save_best(step, state.params, {"epoch": meta["epoch"], "valid": {}})
  ckpts.save_latest(step, state, meta)
  ckpts.commit(step, meta)


def _target(mesh):
  return checkpoint.abstract_like(_state(mesh), sharding.replicated(mesh))


@pytest.mark.parametrize("save_devices, restore_devices", [(8, 1), (1, 8)])
def test_restore_onto_another_device_count(tmp_path, save_devices, restore_devices):
  save_mesh = sharding.make_mesh(jax.devices()[:save_devices])
  restore_mesh = sharding.make_mesh(jax.devices()[:restore_devices])
  ckpts = checkpoint.Checkpoints(tmp_path, keep=2)
  state = _state(save_mesh)
  meta = dict(_meta(1, 1, [3]), iterator={"next_index": 2})
  _epoch_end(ckpts, 3, state, meta, improved=True)
  ckpts.close()
  target = checkpoint.abstract_like(state, sharding.replicated(restore_mesh))
  restored, got = checkpoint.Checkpoints(tmp_path, keep=2).resume(target)
  assert got == meta
  jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(state))
  assert restored.params["w"].sharding.device_set == set(jax.devices()[:restore_devices])


def _damage(step_dir):
  damaged = 0
  for f in (step_dir / "state").rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
      f.write_bytes(b"\x00garbage")
      damaged += 1
  assert damaged


def _two_epochs(tmp_path, mesh, second_improves=True):
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  _epoch_end(ckpts, 1, _state(mesh, 1.0), _meta(1, 1, [1]), improved=True)
  _epoch_end(ckpts, 2, _state(mesh, 2.0), _meta(2, 2 if second_improves else 1, [1, 2]),
             improved=second_improves)
  ckpts.close()


def test_a_damaged_or_missing_committed_checkpoint_stops_and_names_the_ways_on(tmp_path):
  """Never a silent fall back (or a fresh start) past the committed step: one line that
  names the checkpoint and the older one to resume from; nothing is changed."""
  mesh = sharding.make_mesh()
  _two_epochs(tmp_path, mesh)
  _damage(tmp_path / "ckpt" / "2")
  before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
  with pytest.raises(checkpoint.CheckpointError) as e:
    checkpoint.Checkpoints(tmp_path, keep=3).resume(_target(mesh))
  message = str(e.value)
  assert "\n" not in message and f"{tmp_path}/ckpt/2, the last the run committed" in message
  assert "--config.train.restart=1" in message and "restart=from_scratch" in message
  assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(tmp_path / "ckpt" / "2")
  with pytest.raises(checkpoint.CheckpointError, match=r"ckpt/2, .*\(it is missing\)"):
    checkpoint.Checkpoints(tmp_path, keep=3).resume(_target(mesh))
  assert (tmp_path / "best" / "2").is_dir()


def test_a_checkpoint_saved_after_the_commit_is_used_or_skipped(tmp_path, caplog):
  """ckpt/3 saved, its commit not yet written: it is complete, so it is resumed; damaged,
  the committed ckpt/2 is used instead, with a warning."""
  mesh = sharding.make_mesh()
  _two_epochs(tmp_path, mesh)
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  ckpts.save_latest(3, _state(mesh, 3.0), _meta(2, 2, [1, 2]))
  ckpts.close()
  state, _ = checkpoint.Checkpoints(tmp_path, keep=3).resume(_target(mesh))
  np.testing.assert_array_equal(state.params["b"], np.full(5, 3.0))
  _damage(tmp_path / "ckpt" / "3")
  state, _ = checkpoint.Checkpoints(tmp_path, keep=3).resume(_target(mesh))
  np.testing.assert_array_equal(state.params["b"], np.full(5, 2.0))
  assert any("ckpt/3 (saved after the last commit) cannot be restored" in r.getMessage()
             for r in caplog.records)


def test_best_steps_follow_the_commits(tmp_path):
  """best/ holds the steps the kept checkpoints selected; a best step saved after the
  committed one (a kill before its ckpt/) is dropped on resume; a selected step that a
  kill took is saved again from the checkpoint holding its params."""
  mesh = sharding.make_mesh()
  _two_epochs(tmp_path, mesh, second_improves=False)
  assert checkpoint.workdir_lib.step_dirs(tmp_path / "best") == [1]
  record = json.loads((tmp_path / "progress.json").read_text())
  assert record["step"] == 2 and record["best_step"] == 1 and record["kept"] == {"1": 1,
                                                                                   "2": 1}
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  ckpts.save_best(3, _state(mesh, 3.0).params, {"epoch": 3, "valid": {}})  # Then a kill.
  ckpts.close()
  checkpoint.Checkpoints(tmp_path, keep=3).resume(_target(mesh))
  assert checkpoint.workdir_lib.step_dirs(tmp_path / "best") == [1]
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(tmp_path / "best" / "1")
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  ckpts.resume(_target(mesh))
  params = ckpts.restore_best_params(_target(mesh).params)
  np.testing.assert_array_equal(params["b"], np.ones(5))  # ckpt/1's params, saved again.


def test_nothing_to_restore(tmp_path):
  mesh = sharding.make_mesh()
  assert checkpoint.Checkpoints(tmp_path, keep=2).resume(_target(mesh)) is None
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    checkpoint.Checkpoints(tmp_path, keep=2).restore_best_params(_target(mesh).params)
  (tmp_path / "results.json").write_text("{}")
  with pytest.raises(checkpoint.CheckpointError, match="holds results.json but no checkpoint"):
    checkpoint.Checkpoints(tmp_path, keep=2).resume(_target(mesh))


def test_the_latest_state_is_packed_and_unpacked_ones_still_restore(tmp_path):
  """ckpt/<S> holds the state as one flat array per dtype beside its layout; a checkpoint
  written unpacked (as earlier versions did) resumes the same; a target of another layout
  is refused in one line naming the leaf that differs."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh(jax.devices()[:2])
  state, meta = _state(mesh, 2.0), _meta(1, 1, [4])
  ckpts = checkpoint.Checkpoints(tmp_path / "packed", keep=2)
  _epoch_end(ckpts, 4, state, meta, improved=True)
  ckpts.close()
  raw = ocp.CheckpointManager(tmp_path / "packed" / "ckpt")
  stored = raw.restore(4, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  raw.close()
  assert {k: v.shape for k, v in stored.items()} == {"float32": (17,), "int32": (1,)}
  unpacked = tmp_path / "unpacked"
  old = checkpoint.Checkpoints(unpacked, keep=2)
  old._save(old.latest, 4, state=state, meta=meta)  # pylint: disable=protected-access
  old.commit(4, meta)
  old.close()
  assert not (unpacked / "ckpt" / "4" / "layout").exists()
  for workdir in (tmp_path / "packed", unpacked):
    restored, got = checkpoint.Checkpoints(workdir, keep=2).resume(_target(mesh))
    assert got == meta
    jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(state))
    assert restored.params["w"].sharding == sharding.replicated(mesh)
  other = _target(mesh).replace(params={"w": jax.ShapeDtypeStruct((4, 3), jnp.float32),
                                        "b": _target(mesh).params["b"]})
  with pytest.raises(checkpoint.CheckpointError, match=(
      r"another layout: \[\"\.params\['w'\]\", \[4, 3\], 'float32'\] != "
      r"\[\"\.params\['w'\]\", \[3, 4\], 'float32'\]")):
    checkpoint.Checkpoints(tmp_path / "packed", keep=2).resume(other)
