"""The CLUB estimators' own fit: `club.steps` Adam updates per train step that maximise the
CLUB log-likelihood of the stop-gradient latents (or of fresh-dropout latents with
`club.refresh_latents`; standardised over the batch with `loss.scale_free`, as the
penalty reads them), on the `club` parameter group's leaves only, so that the estimator
updates never touch, or even differentiate, the model.
"""

import flax
import jax
import optax

from mird_jax.training import accumulate
from mird_jax.training import losses
from mird_jax.training import objective
from mird_jax.training import param_groups


def club_leaves(params, rules) -> dict[str, jax.Array]:
  """The estimators' params as a flat {path: leaf} dict (the `club` group)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  labels = flax.traverse_util.flatten_dict(param_groups.label_tree(params, rules), sep="/")
  return {p: v for p, v in flat.items() if labels[p] == "club"}


def with_leaves(params, leaves: dict[str, jax.Array]):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  return flax.traverse_util.unflatten_dict({**flat, **leaves}, sep="/")


def loglik(leaves, params, z, model):
  """Sum over pairs of the CLUB log-likelihood of the latents `z`, as a function of the
  estimator leaves: what the estimators maximise, and what their metrics report."""
  stats = model.apply({"params": with_leaves(params, leaves)}, z, method="club_stats")
  return sum(losses.club_log_likelihood(mu, lv, z[f"z_{y}"]) for (_, y), (mu, lv)
             in stats.items())


def loss(leaves, params, z, model):
  """What the estimator updates minimise (reported separately, as -loglik)."""
  return -loglik(leaves, params, z, model)


def fit(params, opt_club, z, batch, unlabeled, refresh_keys, *, model, tx_club, rules,
        cfg):
  """`cfg.club_steps` Adam updates of the estimator leaves, update i on the latents of the
  forward with dropout key `refresh_keys[i]` when `cfg.refresh_latents`, else on `z`;
  returns (params, opt_club, estimator NLL on `z` before and after them)."""

  z = objective.penalty_latents(z, cfg)  # What the main loss's penalty reads.

  def update(carry, key_i):
    leaves, opt = carry
    z_i = z
    if cfg.refresh_latents:  # The public code's way: a new forward, fresh dropout.
      z_i = objective.penalty_latents(accumulate.refreshed_latents(
          params, batch, unlabeled, key_i, model=model, k=cfg.accumulate), cfg)
    g = jax.grad(loss)(leaves, params, z_i, model)
    upd, opt = tx_club.update(g, opt)
    return (optax.apply_updates(leaves, upd), opt), None

  start = club_leaves(params, rules)
  (leaves, opt_club), _ = jax.lax.scan(update, (start, opt_club), refresh_keys)
  return (with_leaves(params, leaves), opt_club, -loglik(start, params, z, model),
          -loglik(leaves, params, z, model))
