"""Orbax checkpoints: restore onto another device count, fall back past a corrupt latest."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mird_jax import checkpoint
from mird_jax import parallel


def _state(mesh, scale=1.0):
  tree = {"params": {"w": jnp.arange(12.0).reshape(3, 4) * scale, "b": jnp.ones(5) * scale},
          "step": jnp.array(7, jnp.int32)}
  return jax.device_put(tree, parallel.replicated(mesh))


@pytest.mark.parametrize("save_devices, restore_devices", [(8, 1), (1, 8)])
def test_restore_onto_another_device_count(tmp_path, save_devices, restore_devices):
  save_mesh = parallel.make_mesh(jax.devices()[:save_devices])
  restore_mesh = parallel.make_mesh(jax.devices()[:restore_devices])
  ckpts = checkpoint.Checkpoints(tmp_path, keep=2)
  state = _state(save_mesh)
  ckpts.save_latest(3, state, {"epoch": 1, "iterator": {"next_index": 2}})
  ckpts.close()
  target = checkpoint.abstract_like(state, parallel.replicated(restore_mesh))
  restored, meta = checkpoint.Checkpoints(tmp_path, keep=2).restore_latest(target)
  assert meta == {"epoch": 1, "iterator": {"next_index": 2}}
  jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(state))
  assert restored["params"]["w"].sharding.device_set == set(jax.devices()[:restore_devices])


def test_corrupt_latest_falls_back_to_the_previous_one(tmp_path, caplog):
  mesh = parallel.make_mesh()
  ckpts = checkpoint.Checkpoints(tmp_path, keep=3)
  ckpts.save_latest(1, _state(mesh, 1.0), {"epoch": 1})
  ckpts.save_latest(2, _state(mesh, 2.0), {"epoch": 2})
  ckpts.close()
  # Damage every data file of the newest checkpoint's state (a crash mid-copy, a bad disk).
  damaged = 0
  for f in (tmp_path / "ckpt" / "2" / "state").rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
      f.write_bytes(b"\x00garbage")
      damaged += 1
  assert damaged
  target = checkpoint.abstract_like(_state(mesh), parallel.replicated(mesh))
  restored, meta = checkpoint.Checkpoints(tmp_path, keep=3).restore_latest(target)
  assert meta == {"epoch": 1}
  np.testing.assert_array_equal(restored["params"]["b"], np.ones(5))
  assert any("ckpt/2 cannot be restored" in r.getMessage() for r in caplog.records)


def test_nothing_to_restore(tmp_path):
  mesh = parallel.make_mesh()
  target = checkpoint.abstract_like(_state(mesh), parallel.replicated(mesh))
  assert checkpoint.Checkpoints(tmp_path, keep=2).restore_latest(target) is None
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    checkpoint.Checkpoints(tmp_path, keep=2).restore_best_params(target["params"])
