"""The figures a run writes: valid PNGs from a history and from latents."""

import numpy as np

from mird_jax.evaluation import figures

_PNG = b"\x89PNG\r\n\x1a\n"


def _history(epochs=3):
  return [{"epoch": e, "train": {"loss": 1.0 / e, "task": 0.5 / e, "recon/text": 0.2},
           "valid": {"loss": 1.2 / e, "task": 0.6 / e, "MAE": 0.9 - 0.1 * e},
           "valid_losses": {"mi/s_l": 0.1 * e, "club_loglik/s_l": -e}}
          for e in range(1, epochs + 1)]


def test_curves_and_latent_projection_write_pngs(tmp_path):
  figures.curves(_history(), tmp_path / "curves.png", "MAE")
  rng = np.random.default_rng(0)
  latents = {f"z_{m}": rng.normal(size=(30, 4)) + i for i, m in enumerate("slav")}
  drawn = figures.latent_projection(latents, tmp_path / "latents.png", tsne=False)
  assert drawn == ["PCA"]
  for name in ("curves.png", "latents.png"):
    data = (tmp_path / name).read_bytes()
    assert data.startswith(_PNG) and len(data) > 5_000, name
