"""The main training objective: each loss term as sums over rows (losses.*_sums) and the
total built from them. Which terms a model has is its family's `loss_terms(spec)`
(models/factory.py); the step computes those with a non-zero weight (step.StepConfig).

A term's sums over the rows of a batch (a dict of arrays) add up across parts of the
batch, and the term is a function of the sums (`finish`): one forward gives a batch's
sums, several microbatches' sums add up to the same thing (mird_jax/training/accumulate.py).
"""

import jax
import jax.numpy as jnp

from data_pipelines import example
from mird_jax.training import losses

_SAMPLE = 2  # fold_in tag of the bottleneck noise key, from the dropout key.

# The function of its sums that gives each family's term.
_FINISH = {"task": losses.ratio, "recon": losses.ratio, "kl": losses.ratio,
           "mi": losses.club_bound, "orthogonal": losses.orthogonality_from_sums}


def weight_key(term: str) -> str:
  """The hparams entry that weights a loss term ("mi/s_a" -> "w/mi")."""
  family, _, part = term.partition("/")
  return {"task": "w/task", "recon": f"w/recon_{part}", "mi": "w/mi",
          "orthogonal": "w/orthogonal", "kl": "w/kl"}[family]


def finish(sums: dict) -> dict:
  """{term: value} from {term: its sums}."""
  return {name: _FINISH[name.partition("/")[0]](s) for name, s in sums.items()}


def total(terms: dict, hparams, cfg):
  """The weighted total main loss of the terms (losses.combine). MIB's fused prediction's
  task term is also multiplied by `w/fused_task` (2 restores the public code's count)."""
  weights = {t: hparams[weight_key(t)] for t in terms}
  if "task" in weights and "w/fused_task" in hparams:
    weights["task"] = weights["task"] * hparams["w/fused_task"]
  return losses.combine(terms, weights, cfg.combine, cfg.log_eps)


def joint_batch(batch, unlabeled):
  """The model's inputs: labelled rows first, then unlabelled ones, for one forward pass."""
  if unlabeled is None:
    return {k: batch[k] for k in example.MODEL_KEYS}
  return {k: jnp.concatenate([batch[k], unlabeled[k]], axis=0) for k in example.MODEL_KEYS}


def bottleneck_sums(outputs, labels_B, cfg, only=None) -> dict:
  """MIB's per-bottleneck terms among `outputs` (the model's aux in training, a split's
  diagnostic rows), as sums: each unimodal decoder's task loss (`task/m`, from `pred_m` on
  the labelled rows, which come first) and each bottleneck's KL (`kl/m`, from `mu_m` and
  `log_sigma_m`); with `only`, just the names in it."""
  n = labels_B.shape[0]
  sums = {}
  for m in "lav":
    if f"pred_{m}" in outputs and (only is None or f"task/{m}" in only):
      sums[f"task/{m}"] = losses.task_sums(outputs[f"pred_{m}"][:n], labels_B, cfg.task)
  for m in "lavf":
    if f"mu_{m}" in outputs and (only is None or f"kl/{m}" in only):
      sums[f"kl/{m}"] = losses.gaussian_kl_sums(outputs[f"mu_{m}"],
                                                outputs[f"log_sigma_{m}"], cfg.kl_reduce)
  return sums


def bottleneck_terms(outputs, labels_B, cfg, only=None) -> dict:
  return finish(bottleneck_sums(outputs, labels_B, cfg, only))


def recon_rows(aux, joint, cfg, only=None) -> dict:
  """Per example (sum, count) of each reconstruction term whose decoder output is in `aux`
  (a decoder exists where its weight is non-zero); with `only`, just the names in it. The
  training terms pool them over the batch, the diagnostics over a whole split."""
  rows = {}
  if "recon_text" in aux and (only is None or "recon/text" in only):
    rows["recon/text"] = (
        losses.recon_tokens_ce_sums(aux["recon_text"], joint["text_ids"], joint["text_mask"])
        if cfg.text_target == "vocab_logits" else
        losses.recon_tokens_mse_sums(aux["recon_text"], aux["text_target"],
                                     joint["text_mask"]))
  for m in ("audio", "vision"):
    if f"recon_{m}" in aux and (only is None or f"recon/{m}" in only):
      rows[f"recon/{m}"] = losses.recon_frames_sums(aux[f"recon_{m}"], joint[m],
                                                    joint[f"{m}_len"])
  return rows


def penalty_latents(aux, cfg, mask_B=None) -> dict:
  """The latents that the CLUB estimators and the MI and orthogonality penalties read: the
  model's own, or with `cfg.scale_free` (loss.scale_free, our extension) each standardised
  over the batch's rows (losses.standardise), so that shrinking a latent meets no penalty."""
  z = {k: v for k, v in aux.items() if k.startswith("z_")}
  if cfg.scale_free:
    z = {k: losses.standardise(v, mask_B) for k, v in z.items()}
  return z


def term_sums(pred_B, aux, stats, joint, labels_B, cfg, z_pen=None) -> dict:
  """The sums of every main-loss term with a non-zero weight (`cfg.terms`), by name; the
  MI and orthogonality terms read `z_pen` (penalty_latents; default aux's latents)."""
  z_pen = aux if z_pen is None else z_pen
  weights = set(cfg.terms)
  sums = {}
  if "task" in weights:
    sums["task"] = losses.task_sums(pred_B[:labels_B.shape[0]], labels_B, cfg.task)
  sums.update(bottleneck_sums(aux, labels_B, cfg, only=weights))
  sums.update({name: losses.pooled(per_example)
               for name, per_example in recon_rows(aux, joint, cfg, only=weights).items()})
  for (x, y), (mu, logvar) in stats.items():
    if f"mi/{x}_{y}" in weights:
      sums[f"mi/{x}_{y}"] = losses.club_sums(mu, logvar, z_pen[f"z_{y}"])
  if cfg.constraint == "orthogonal":
    for m in "lav":
      if f"orthogonal/s_{m}" in weights:
        sums[f"orthogonal/s_{m}"] = losses.orthogonality_sums(z_pen["z_s"], z_pen[f"z_{m}"])
  return sums


def forward_sums(params, joint, labels_B, key, *, model, cfg):
  """(term sums, aux) of one training-mode forward with dropout `key`. The estimators
  enter as constants: the main loss never differentiates them."""
  pred, aux = model.apply({"params": params}, joint, deterministic=False, reconstruct=True,
                          rngs={"dropout": key, "sample": jax.random.fold_in(key, _SAMPLE)})
  with jax.named_scope("losses"):  # The profile's label (mird_jax/tools/profile.py).
    stats = {}
    z_pen = penalty_latents(aux, cfg)
    if cfg.constraint == "mim":  # A monitoring-only estimator stays out of the main loss.
      frozen = jax.lax.stop_gradient(params)
      stats = model.apply({"params": frozen}, z_pen, method="club_stats")
    return term_sums(pred, aux, stats, joint, labels_B, cfg, z_pen), aux


def main_objective(params, joint, labels_B, key, hparams, *, model, cfg):
  """(total main loss, (terms, aux)) of one training-mode forward on a whole batch."""
  sums, aux = forward_sums(params, joint, labels_B, key, model=model, cfg=cfg)
  terms = finish(sums)
  return total(terms, hparams, cfg), (terms, aux)
