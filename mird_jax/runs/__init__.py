"""One run in one workdir: assembly, the epoch loop, checkpoints, outputs, inference."""
