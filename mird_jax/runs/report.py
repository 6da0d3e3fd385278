"""The diagnostics a run writes (config.diagnostics): per epoch, every loss term and the
CLUB terms of each pair on the whole validation split; at the end, on the selected params,
the same on test, the disentanglement check and the figures."""

import pathlib

from absl import logging
import jax
import numpy as np

from mird_jax.evaluation import disentanglement
from mird_jax.evaluation import figures
from mird_jax.runs import experiment
from mird_jax.training import diagnostics


def _rows(exp, params, split):
  return experiment.gather(exp, lambda b: exp.rows_step(params, b), exp.streams.eval(split))


def valid_terms(exp, params, split: str) -> dict[str, float]:
  """diagnostics.split_terms of `split` (the validation split, each epoch) under `params`."""
  return epoch_diagnostics(exp, params, split)[0]


def epoch_diagnostics(exp, params, split: str):
  """(diagnostics.split_terms, disentanglement.latent_scale) of `split` under `params`, from
  one pass: what each epoch records of the validation split."""
  rows, labels, _ = _rows(exp, params, split)
  return (diagnostics.split_terms(rows, labels, exp.step_config, exp.hparams),
          disentanglement.latent_scale(diagnostics.latents(rows)))


def _factors(exp):
  """The factors.npz mapping when data.factors_file names one, else None."""
  name = exp.config.data.factors_file
  if not name:
    return None
  path = pathlib.Path(exp.manual_dir or ".") / name
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file (data.factors_file in data.manual_dir)")
  with np.load(path, allow_pickle=False) as f:  # No pickle: loading runs no code.
    return {k: f[k] for k in f.files}


def final(exp, params, history: list[dict], workdir: pathlib.Path, split: str = "test"
          ) -> dict:
  """`split`'s terms, k-NN MI, probe R^2 (with factors; test only: the probes are scored
  there) and the figures; returns what goes into results.json. A sweep trial passes
  "valid": it never reads test."""
  g = exp.config.diagnostics
  rows, labels, ids = _rows(exp, params, split)
  out = {f"{split}_losses": diagnostics.split_terms(rows, labels, exp.step_config,
                                                   exp.hparams)}
  test_z = diagnostics.latents(rows)
  check = {"knn_mi": disentanglement.knn_mi_table(test_z, g.knn_k, g.knn_dims),
           "latent_variance": disentanglement.latent_spread(test_z),
           "latent_norm": disentanglement.latent_norm(test_z)}
  factors = _factors(exp) if split == "test" else None
  if factors is not None:
    z, targets = {"test": test_z}, {"test": disentanglement.factor_targets(factors, ids)}
    for split in ("train", "valid"):
      split_rows, _, split_ids = _rows(exp, params, split)
      z[split] = diagnostics.latents(split_rows)
      targets[split] = disentanglement.factor_targets(factors, split_ids)
    check["probe_r2"] = disentanglement.probe_table(z, targets)
  out["disentanglement"] = check
  if jax.process_index() == 0:
    figures.curves(history, workdir / "curves.png", exp.config.train.select_metric)
    drawn = figures.latent_projection(test_z, workdir / "latents.png", tsne=g.tsne,
                                      seed=exp.config.seed)
    logging.info("wrote curves.png and latents.png (%s)", ", ".join(drawn))
  return out
