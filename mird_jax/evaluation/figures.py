"""The run's figures as PNG files (matplotlib, headless): training curves with the paper's
MI curves, and the paper's 2-D projection of the four latents."""

import pathlib

import numpy as np

_OTHER_TERMS = ("recon/", "task/", "kl/")  # MIRD's reconstructions; MIB's bottleneck terms.


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top  # Only runs that draw pay for it.
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _series(history, part, key):
  return np.array([h.get(part, {}).get(key, np.nan) for h in history], np.float64)


def _scale_panel(ax, history, epochs, kind: str, title: str) -> None:
  """Each latent's `kind` (variance or norm) per epoch on the validation split."""
  names = sorted({z for h in history for z in h.get("valid_latents", {}).get(kind, {})})
  for z in names:
    ax.plot(epochs, [h.get("valid_latents", {}).get(kind, {}).get(z, np.nan)
                     for h in history], label=z)
  if names:
    ax.set_yscale("log")
  ax.set_title(title)


def curves(history: list[dict], path: pathlib.Path, select_metric: str) -> None:
  """Per epoch: total and task loss (train vs valid), the other loss terms
  (reconstructions, or MIB's unimodal task and KL terms), the selection metric, the CLUB
  bound of each pair and the estimators' log-likelihood (valid, MIRD), and beside them
  each latent's scale (summed variance and mean norm, valid): a bound can fall because a
  latent shrank, not because it shares less."""
  plt = _pyplot()
  epochs = [h["epoch"] for h in history]
  fig, axes = plt.subplots(2, 4, figsize=(20, 8))
  ax = axes[0, 0]
  for key in ("loss", "task"):
    ax.plot(epochs, _series(history, "train", "loss" if key == "loss" else "loss/task"),
            "--", label=f"train {key}")
    ax.plot(epochs, _series(history, "valid_losses", key), label=f"valid {key}")
  ax.set_title("main loss and task loss")
  ax = axes[0, 1]
  others = sorted({k for h in history for k in h.get("valid_losses", {})
                   if k.startswith(_OTHER_TERMS)})
  for key in others:
    ax.plot(epochs, _series(history, "train", f"loss/{key}"), "--", label=f"train {key}")
    ax.plot(epochs, _series(history, "valid_losses", key), label=f"valid {key}")
  ax.set_title("other loss terms")
  ax = axes[0, 2]
  ax.plot(epochs, _series(history, "valid", select_metric), "o-")
  ax.set_title(f"valid {select_metric} (selection)")
  ax = axes[1, 0]
  pairs = sorted({k for h in history for k in h.get("valid_losses", {}) if k.startswith("mi/")})
  for key in pairs:
    ax.plot(epochs, _series(history, "valid_losses", key), label=key[3:])
  ax.axhline(0.0, color="grey", lw=0.5)
  ax.set_title("CLUB upper bound per pair (valid)")
  ax = axes[1, 1]
  for key in pairs:
    ax.plot(epochs, _series(history, "valid_losses", f"club_loglik/{key[3:]}"), label=key[3:])
  ax.set_title("estimator log-likelihood per pair (valid)")
  ax = axes[1, 2]
  for m in "lav":
    ax.plot(epochs, _series(history, "valid_losses", f"orthogonal/s_{m}"), label=f"s_{m}")
  ax.set_title("||z_s^T z_m / N||^2 (valid)")
  _scale_panel(axes[0, 3], history, epochs, "norm", "latent mean norm (valid)")
  _scale_panel(axes[1, 3], history, epochs, "variance", "latent summed variance (valid)")
  for ax in axes.flat:
    ax.set_xlabel("epoch")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  # Fixed margins: tight_layout measured every tick label first, 60% of the figure's time.
  fig.subplots_adjust(left=0.04, right=0.99, bottom=0.07, top=0.96, wspace=0.22, hspace=0.3)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _tsne(x, seed):
  try:
    from sklearn import manifold  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
  return manifold.TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def latent_projection(latents: dict[str, np.ndarray], path: pathlib.Path, *,
                      tsne: bool = True, seed: int = 0) -> list[str]:
  """PCA (and t-SNE when scikit-learn is installed and `tsne`) of all four latents of one
  split, pooled, coloured by latent. Returns the projections drawn."""
  plt = _pyplot()
  names = sorted(latents)
  x = np.concatenate([latents[k] for k in names]).astype(np.float64)
  which = np.repeat(np.arange(len(names)), [len(latents[k]) for k in names])
  centred = x - x.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  panels = [("PCA", centred @ vt[:2].T)]
  if tsne:
    embedded = _tsne(x, seed)
    if embedded is not None:
      panels.append(("t-SNE", embedded))
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
  for ax, (title, y) in zip(axes[0], panels):
    for i, name in enumerate(names):
      ax.scatter(*y[which == i].T, s=4, alpha=0.5, label=name)
    ax.set_title(f"{title} of the test latents")
    ax.legend(markerscale=3)
  fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=0.93, wspace=0.2)
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return [title for title, _ in panels]
