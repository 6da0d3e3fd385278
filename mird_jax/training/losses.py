"""Losses as plain functions of arrays (docs/design.md). Every masked mean divides by the count of
real tokens/frames, so padding never dilutes or enters a loss.

Each training loss is also written as sums over rows (`*_sums`, a dict of arrays) and a
function of those sums: the sums of two parts of a batch add up to the whole batch's, so
gradient accumulation (mird_jax/training/accumulate.py) computes every term, batch statistics such
as CLUB's and orthogonality's included, exactly as on the whole batch. The plain loss is
the finishing function of the sums, so there is one implementation of each.
"""

import jax
import jax.numpy as jnp


def task_rows(pred_B, label_B, kind: str = "mse"):
  if kind == "mse":
    return (pred_B - label_B) ** 2
  if kind == "l1":
    return jnp.abs(pred_B - label_B)
  raise ValueError(f"loss.task={kind!r}; expected mse or l1")


def task_sums(pred_B, label_B, kind: str = "mse"):
  return mean_sums(task_rows(pred_B, label_B, kind))


def task_loss(pred_B, label_B, kind: str = "mse"):
  return ratio(task_sums(pred_B, label_B, kind))


def frame_mask(length_B, t: int):
  return jnp.arange(t)[None, :] < length_B[:, None]


def ratio(sums):
  """A mean from {"sum", "count"} (a count of 0 gives 0, not NaN)."""
  return sums["sum"] / jnp.maximum(sums["count"], 1.0)


def mean_sums(values_B):
  """{"sum", "count"} of per-row values, for a mean over rows."""
  return {"sum": jnp.sum(values_B.astype(jnp.float32)),
          "count": jnp.asarray(values_B.shape[0], jnp.float32)}


def pooled(per_example):
  """{"sum", "count"} of per-example (sum, count) pairs (a masked mean over the batch)."""
  total_B, count_B = per_example
  return {"sum": jnp.sum(total_B.astype(jnp.float32)),
          "count": jnp.sum(count_B.astype(jnp.float32))}


def _masked_sums(values_BxT, mask_BxT):
  mask = mask_BxT.astype(values_BxT.dtype)
  return jnp.sum(values_BxT * mask, axis=1), jnp.sum(mask, axis=1)


def recon_frames_sums(recon_BxTxD, target_BxTxD, length_B):
  """Per example: (sum over its valid frames of the frame MSE, number of valid frames)."""
  per_frame = jnp.mean((recon_BxTxD - target_BxTxD) ** 2, axis=-1)
  return _masked_sums(per_frame, frame_mask(length_B, target_BxTxD.shape[1]))


def recon_frames(recon_BxTxD, target_BxTxD, length_B):
  """MSE over the valid frames only (mean over frames and feature dims)."""
  return ratio(pooled(recon_frames_sums(recon_BxTxD, target_BxTxD, length_B)))


def recon_tokens_ce_sums(logits_BxTxV, ids_BxT, mask_BxT):
  """Per example: (summed cross-entropy over its real tokens, number of real tokens)."""
  logp = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  nll_BxT = -jnp.take_along_axis(logp, ids_BxT[..., None], axis=-1)[..., 0]
  return _masked_sums(nll_BxT, mask_BxT)


def recon_tokens_ce(logits_BxTxV, ids_BxT, mask_BxT):
  """Cross-entropy of the token reconstruction, over real tokens only."""
  return ratio(pooled(recon_tokens_ce_sums(logits_BxTxV, ids_BxT, mask_BxT)))


def recon_tokens_mse_sums(recon_BxTxH, target_BxTxH, mask_BxT):
  return _masked_sums(jnp.mean((recon_BxTxH - target_BxTxH) ** 2, axis=-1), mask_BxT)


def recon_tokens_mse(recon_BxTxH, target_BxTxH, mask_BxT):
  """MSE to the (stop-gradient) BERT input embeddings, over real tokens only."""
  return ratio(pooled(recon_tokens_mse_sums(recon_BxTxH, target_BxTxH, mask_BxT)))


def club_log_likelihood(mu_BxD, logvar_BxD, y_BxD):
  """CLUB's `loglikeli`: mean_i sum_d [-(mu - y)^2 / e^logvar - logvar] (2x the Gaussian
  log-likelihood up to a constant, as in the reference code)."""
  return jnp.mean(jnp.sum(-(mu_BxD - y_BxD) ** 2 / jnp.exp(logvar_BxD) - logvar_BxD, axis=-1))


def club_sums(mu_BxD, logvar_BxD, y_BxD):
  """The sums over rows that CLUB's closed-form bound is a function of (club_bound).

  With w = 1 / (2 e^lv), the bound's negative term per row is
  -sum_d w ((mu - mean_j y)^2 + var_j y) = -sum_d w (mu^2 - 2 mu mean(y) + mean(y^2)),
  so the bound depends on the batch through sums of w, w mu, w mu^2, y and y^2 only.
  """
  f32 = lambda x: x.astype(jnp.float32)
  mu, y = f32(mu_BxD), f32(y_BxD)
  w = 0.5 * jnp.exp(-f32(logvar_BxD))
  return {"positive": -jnp.sum((mu - y) ** 2 * w), "w": jnp.sum(w, axis=0),
          "w_mu": jnp.sum(w * mu, axis=0), "w_mu2": jnp.sum(w * mu ** 2, axis=0),
          "y": jnp.sum(y, axis=0), "y2": jnp.sum(y ** 2, axis=0),
          "count": jnp.asarray(y.shape[0], jnp.float32)}


def club_bound(sums):
  """CLUB's MI upper bound from club_sums: mean_i (positive_i - negative_i), where
  positive_i = -sum_d (mu_id - y_id)^2 / (2 e^lv_id) and
  negative_i = -sum_d mean_j (y_jd - mu_id)^2 / (2 e^lv_id). O(B d), no B x B tensor."""
  n = sums["count"]
  y_mean, y2_mean = sums["y"] / n, sums["y2"] / n
  negative = jnp.sum(sums["w_mu2"] - 2.0 * y_mean * sums["w_mu"] + y2_mean * sums["w"])
  return (sums["positive"] + negative) / n


def club_upper_bound(mu_BxD, logvar_BxD, y_BxD):
  """CLUB's MI upper bound of one batch (club_bound of club_sums)."""
  return club_bound(club_sums(mu_BxD, logvar_BxD, y_BxD))


def gaussian_kl_rows(mu_BxD, log_sigma_BxD, reduce: str = "mean"):
  """Per example: KL(N(mu, sigma^2) || N(0, I)), averaged (`mean`, the public MIB code) or
  summed (`sum`, the analytic KL) over the dims."""
  per_dim = 0.5 * (mu_BxD ** 2 + jnp.exp(2.0 * log_sigma_BxD) - 2.0 * log_sigma_BxD - 1.0)
  if reduce == "mean":
    return jnp.mean(per_dim, axis=-1)
  if reduce == "sum":
    return jnp.sum(per_dim, axis=-1)
  raise ValueError(f"model.mib.kl_reduce={reduce!r}; expected mean or sum")


def gaussian_kl_sums(mu_BxD, log_sigma_BxD, reduce: str = "mean"):
  return mean_sums(gaussian_kl_rows(mu_BxD, log_sigma_BxD, reduce))


def gaussian_kl(mu_BxD, log_sigma_BxD, reduce: str = "mean"):
  """The bottleneck's KL term: the batch mean of gaussian_kl_rows."""
  return ratio(gaussian_kl_sums(mu_BxD, log_sigma_BxD, reduce))


def standardise(z_BxD, mask_B=None, eps: float = 1e-8):
  """Each column of z centred and scaled to unit variance over the rows (the rows with mask
  1 when `mask_B` is given; eps keeps a collapsed column finite). The scale-free penalty
  (loss.scale_free) reads latents through this, so no penalty falls when a latent shrinks."""
  z = z_BxD.astype(jnp.float32)
  w = jnp.ones(z.shape[:1], jnp.float32) if mask_B is None else mask_B.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(w), 1.0)
  mean_1xD = jnp.sum(z * w[:, None], axis=0, keepdims=True) / n
  var_1xD = jnp.sum((z - mean_1xD) ** 2 * w[:, None], axis=0, keepdims=True) / n
  return (z - mean_1xD) * jax.lax.rsqrt(var_1xD + eps)


def orthogonality_sums(z_s_BxD, z_m_BxD):
  z_s, z_m = z_s_BxD.astype(jnp.float32), z_m_BxD.astype(jnp.float32)
  return {"cross": z_s.T @ z_m, "count": jnp.asarray(z_s.shape[0], jnp.float32)}


def orthogonality_from_sums(sums):
  return jnp.sum((sums["cross"] / sums["count"]) ** 2)


def orthogonality(z_s_BxD, z_m_BxD):
  """Squared Frobenius norm of z_s^T z_m / B (MISA-style soft orthogonality)."""
  return orthogonality_from_sums(orthogonality_sums(z_s_BxD, z_m_BxD))


REGULARISERS = ("mi/", "orthogonal/", "kl/")  # Terms `combine` never takes the log of.


def combine(terms: dict, weights: dict, mode: str, log_eps: float):
  """Total main loss from named terms.

  `log` (the public code): weight * log(term + eps) for the task and reconstruction terms,
  weight * term for the MI, orthogonality and KL regularisers (MI can be negative; a
  regulariser is not a likelihood). `weighted`: every
  term enters as weight * term. A term with weight 0 is not in `terms` at all.
  """
  if mode not in ("log", "weighted"):
    raise ValueError(f"loss.combine={mode!r}; expected log or weighted")
  total = 0.0
  for name, value in terms.items():
    w = weights[name]
    if mode == "log" and not name.startswith(REGULARISERS):
      total += w * jnp.log(value + log_eps)
    else:
      total += w * value
  return total
