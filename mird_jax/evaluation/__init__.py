"""Host-side NumPy and matplotlib on finished predictions and latents: metrics, the
disentanglement check, ridge probes, figures. Imports nothing of mird_jax outside itself."""
