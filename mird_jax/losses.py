"""Losses as plain functions of arrays (docs/design.md). Every masked mean divides by the count of
real tokens/frames, so padding never dilutes or enters a loss."""

import jax
import jax.numpy as jnp


def task_loss(pred_B, label_B, kind: str = "mse"):
  if kind == "mse":
    return jnp.mean((pred_B - label_B) ** 2)
  if kind == "l1":
    return jnp.mean(jnp.abs(pred_B - label_B))
  raise ValueError(f"loss.task={kind!r}; expected mse or l1")


def frame_mask(length_B, t: int):
  return jnp.arange(t)[None, :] < length_B[:, None]


def _ratio(sums):
  """A masked mean over the batch from per-example (sum, count) pairs."""
  total_B, count_B = sums
  return jnp.sum(total_B) / jnp.maximum(jnp.sum(count_B), 1.0)


def _masked_sums(values_BxT, mask_BxT):
  mask = mask_BxT.astype(values_BxT.dtype)
  return jnp.sum(values_BxT * mask, axis=1), jnp.sum(mask, axis=1)


def recon_frames_sums(recon_BxTxD, target_BxTxD, length_B):
  """Per example: (sum over its valid frames of the frame MSE, number of valid frames)."""
  per_frame = jnp.mean((recon_BxTxD - target_BxTxD) ** 2, axis=-1)
  return _masked_sums(per_frame, frame_mask(length_B, target_BxTxD.shape[1]))


def recon_frames(recon_BxTxD, target_BxTxD, length_B):
  """MSE over the valid frames only (mean over frames and feature dims)."""
  return _ratio(recon_frames_sums(recon_BxTxD, target_BxTxD, length_B))


def recon_tokens_ce_sums(logits_BxTxV, ids_BxT, mask_BxT):
  """Per example: (summed cross-entropy over its real tokens, number of real tokens)."""
  logp = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  nll_BxT = -jnp.take_along_axis(logp, ids_BxT[..., None], axis=-1)[..., 0]
  return _masked_sums(nll_BxT, mask_BxT)


def recon_tokens_ce(logits_BxTxV, ids_BxT, mask_BxT):
  """Cross-entropy of the token reconstruction, over real tokens only."""
  return _ratio(recon_tokens_ce_sums(logits_BxTxV, ids_BxT, mask_BxT))


def recon_tokens_mse_sums(recon_BxTxH, target_BxTxH, mask_BxT):
  return _masked_sums(jnp.mean((recon_BxTxH - target_BxTxH) ** 2, axis=-1), mask_BxT)


def recon_tokens_mse(recon_BxTxH, target_BxTxH, mask_BxT):
  """MSE to the (stop-gradient) BERT input embeddings, over real tokens only."""
  return _ratio(recon_tokens_mse_sums(recon_BxTxH, target_BxTxH, mask_BxT))


def club_log_likelihood(mu_BxD, logvar_BxD, y_BxD):
  """CLUB's `loglikeli`: mean_i sum_d [-(mu - y)^2 / e^logvar - logvar] (2x the Gaussian
  log-likelihood up to a constant, as in the reference code)."""
  return jnp.mean(jnp.sum(-(mu_BxD - y_BxD) ** 2 / jnp.exp(logvar_BxD) - logvar_BxD, axis=-1))


def club_upper_bound(mu_BxD, logvar_BxD, y_BxD):
  """CLUB's MI upper bound, closed form: O(B d) memory, no B x B tensor.

  positive_i = -sum_d (mu_id - y_id)^2 / (2 e^lv_id)
  negative_i = -sum_d mean_j (y_jd - mu_id)^2 / (2 e^lv_id)
             = -sum_d ((mu_id - mean_j y_jd)^2 + var_j y_jd) / (2 e^lv_id)
  bound = mean_i (positive_i - negative_i)
  """
  inv_2var = 0.5 * jnp.exp(-logvar_BxD)
  positive = -jnp.sum((mu_BxD - y_BxD) ** 2 * inv_2var, axis=-1)
  y_mean = jnp.mean(y_BxD, axis=0, keepdims=True)
  y_var = jnp.var(y_BxD, axis=0, keepdims=True)
  negative = -jnp.sum(((mu_BxD - y_mean) ** 2 + y_var) * inv_2var, axis=-1)
  return jnp.mean(positive - negative)


def club_upper_bound_pairwise(mu_BxD, logvar_BxD, y_BxD):
  """The reference's B x B x D form, for tests only."""
  positive = -jnp.sum((mu_BxD - y_BxD) ** 2 / 2 / jnp.exp(logvar_BxD), axis=-1)
  diff_BxBxD = y_BxD[None, :, :] - mu_BxD[:, None, :]
  negative = -jnp.sum(jnp.mean(diff_BxBxD ** 2, axis=1) / 2 / jnp.exp(logvar_BxD), axis=-1)
  return jnp.mean(positive - negative)


def gaussian_kl_rows(mu_BxD, log_sigma_BxD, reduce: str = "mean"):
  """Per example: KL(N(mu, sigma^2) || N(0, I)), averaged (`mean`, the public MIB code) or
  summed (`sum`, the analytic KL) over the dims."""
  per_dim = 0.5 * (mu_BxD ** 2 + jnp.exp(2.0 * log_sigma_BxD) - 2.0 * log_sigma_BxD - 1.0)
  if reduce == "mean":
    return jnp.mean(per_dim, axis=-1)
  if reduce == "sum":
    return jnp.sum(per_dim, axis=-1)
  raise ValueError(f"model.mib.kl_reduce={reduce!r}; expected mean or sum")


def gaussian_kl(mu_BxD, log_sigma_BxD, reduce: str = "mean"):
  """The bottleneck's KL term: the batch mean of gaussian_kl_rows."""
  return jnp.mean(gaussian_kl_rows(mu_BxD, log_sigma_BxD, reduce))


def orthogonality(z_s_BxD, z_m_BxD):
  """Squared Frobenius norm of z_s^T z_m / B (MISA-style soft orthogonality)."""
  return jnp.sum((z_s_BxD.T @ z_m_BxD / z_s_BxD.shape[0]) ** 2)


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
