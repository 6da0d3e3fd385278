"""What a run measures beyond its metrics: every loss term on a whole split, the CLUB
bound and log-likelihood of each latent pair (the paper's MI curves), and, at the end, the
latents themselves for the disentanglement check and the figures.

`jit_rows` compiles one deterministic forward per model that returns, per example, the
prediction, the model's four latents (`LATENTS`), the reconstruction errors as (sum,
count) and each estimator's (mu, logvar) for MIRD, each bottleneck's prediction and
posterior (mu, log sigma) for MIB. `split_terms` turns the rows of a whole split into split-level
terms with the same loss functions as training: masked means over all real tokens/frames
of the split, and the CLUB terms on all its latents at once (they are batch statistics, so
averaging per-batch values would not give the split's).
"""

import functools

import jax
import numpy as np

from mird_jax.models import club
from mird_jax.training import losses
from mird_jax.training import objective
from mird_jax.training import sharding
from mird_jax.training import step as step_lib

_BOTTLENECK = ("pred_", "mu_", "log_sigma_")  # MIB's per-bottleneck outputs.


def rows_step(params, batch, *, model, cfg: step_lib.StepConfig):
  """Per-example diagnostics of one deterministic forward (see the module docstring)."""
  joint = objective.joint_batch(batch, None)
  pred, aux = model.apply({"params": params}, joint, deterministic=True, reconstruct=True,
                         rngs=step_lib.eval_rngs(model, batch))
  rows = {"pred": pred, **{k: aux[k] for k in type(model).LATENTS}}
  rows.update({k: v for k, v in aux.items() if k.startswith(_BOTTLENECK)})
  for name, (total, count) in objective.recon_rows(aux, joint, cfg).items():
    rows[f"{name}/sum"], rows[f"{name}/count"] = total, count
  # The estimators read what they were fitted on: with loss.scale_free, each eval batch's
  # latents standardised over its real rows.
  z_pen = objective.penalty_latents(aux, cfg, batch.get("mask"))
  stats = (model.apply({"params": params}, z_pen, method="club_stats")
           if cfg.estimators else {})
  for (x, y), (mu, logvar) in stats.items():
    rows[f"club_mu/{x}_{y}"], rows[f"club_logvar/{x}_{y}"] = mu, logvar
    if cfg.scale_free:
      rows[f"club_y/{x}_{y}"] = z_pen[f"z_{y}"]
  return rows


@functools.lru_cache(maxsize=8)
def jit_rows(model, mesh, cfg: step_lib.StepConfig):
  """The jitted (params, batch) -> per-example rows (one program per model and mesh)."""
  rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(functools.partial(rows_step, model=model, cfg=cfg), in_shardings=(rep, data),
                 out_shardings=data)


def split_terms(rows: dict, labels, cfg: step_lib.StepConfig, hparams) -> dict[str, float]:
  """Split-level values of every loss term, of the total main loss, and of each pair's CLUB
  bound (`mi/x_y`, also without constraint mim when the estimators are monitored) and
  log-likelihood (`club_loglik/x_y`)."""
  out = {"task": losses.task_loss(rows["pred"], labels, cfg.task),
         **objective.bottleneck_terms(rows, labels, cfg)}
  for name in ("recon/text", "recon/audio", "recon/vision"):
    if f"{name}/sum" in rows:
      out[name] = rows[f"{name}/sum"].sum() / max(rows[f"{name}/count"].sum(), 1.0)
  for x, y in club.PAIRS:
    if f"club_mu/{x}_{y}" in rows:
      mu, logvar = rows[f"club_mu/{x}_{y}"], rows[f"club_logvar/{x}_{y}"]
      z_y = rows.get(f"club_y/{x}_{y}", rows[f"z_{y}"])
      out[f"mi/{x}_{y}"] = losses.club_upper_bound(mu, logvar, z_y)
      out[f"club_loglik/{x}_{y}"] = losses.club_log_likelihood(mu, logvar, z_y)
  z = objective.penalty_latents(rows, cfg)  # Standardised over the split (scale_free).
  for m in "lav" if "z_s" in rows else "":  # Cheap, and comparable across constraints.
    out[f"orthogonal/s_{m}"] = losses.orthogonality(z["z_s"], z[f"z_{m}"])
  in_loss = {t: out[t] for t in cfg.terms}
  weights = {t: hparams[objective.weight_key(t)] for t in in_loss}
  out["loss"] = losses.combine(in_loss, weights, cfg.combine, cfg.log_eps)
  return {k: float(v) for k, v in out.items()}


def latents(rows: dict) -> dict[str, np.ndarray]:
  """The model's latents among the rows (z_s, z_l, z_a, z_v or z_l, z_a, z_v, z_f)."""
  return {k: np.asarray(v) for k, v in rows.items() if k.startswith("z_")}
