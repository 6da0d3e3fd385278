"""mird-jax: MIRD (and the MIB family) for multimodal sentiment analysis in JAX/Flax."""
