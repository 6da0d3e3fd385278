"""The test environment itself: conftest must take effect before jax initialises."""

import jax
import jax.numpy as jnp
import pytest


def test_eight_cpu_devices():
  assert jax.device_count() == 8
  assert {d.platform for d in jax.devices()} == {"cpu"}


def test_rank_promotion_raises():
  with pytest.raises(ValueError, match="rank"):
    jnp.ones((3,)) + jnp.ones((2, 3))
