"""Two Optax transforms:

- `main`: `optax.multi_transform` over all params: AdamW for `bert` and `main`,
  `set_to_zero` for `club` (the main loss never moves the estimators, not even through
  Adam's momentum);
- `club`: Adam over the `club` group's leaves only (step.club_leaves), so the estimator
  updates never touch, or even differentiate, the model.
Weight decay skips biases and LayerNorm scales. Learning rates warm up linearly over
`optim.warmup_frac` of all steps, then decay linearly to 0.
"""

import jax
import optax

from mird_jax import param_groups


def schedule(peak: float, total_steps: int, warmup_frac: float) -> optax.Schedule:
  warmup = int(round(warmup_frac * total_steps))
  if warmup == 0:
    return optax.linear_schedule(peak, 0.0, max(total_steps, 1))
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup),
                               optax.linear_schedule(peak, 0.0, max(total_steps - warmup, 1))],
                              [warmup])


def decay_mask(params):
  """True where weight decay applies: not on biases, not on LayerNorm scales."""
  def decays(path, _):
    return getattr(path[-1], "key", None) not in ("bias", "scale")
  return jax.tree_util.tree_map_with_path(decays, params)


def _adamw(lr, o, mask):
  return optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=mask)


def make(config, params, total_steps: int):
  """Returns (tx_main, tx_club, {group: schedule}) for `params`."""
  o = config.optim
  labels = param_groups.label_tree(params, o.groups)
  lrs = {"bert": schedule(o.bert_lr, total_steps, o.warmup_frac),
         "main": schedule(o.main_lr, total_steps, o.warmup_frac)}
  mask = decay_mask  # A callable: multi_transform hands each group a masked tree.
  tx_main = optax.multi_transform(
      {"bert": _adamw(lrs["bert"], o, mask), "main": _adamw(lrs["main"], o, mask),
       "club": optax.set_to_zero()}, labels)
  if o.grad_clip > 0:
    tx_main = optax.chain(optax.clip_by_global_norm(o.grad_clip), tx_main)
  tx_club = optax.adam(config.club.lr)
  return tx_main, tx_club, lrs
