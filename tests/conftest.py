"""Test setup: 8 faked CPU devices and strict rank promotion, before anything imports jax."""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]).strip()
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["HF_HUB_OFFLINE"] = "1"  # Nothing in the tests may reach the hub.
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import jax  # noqa: E402  (must come after the environment above)

jax.config.update("jax_numpy_rank_promotion", "raise")
