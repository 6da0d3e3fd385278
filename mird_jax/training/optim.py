"""Optimisers and the hyper-parameters that are values, not program constants.

- `main`: an `optax.multi_transform` over all params giving each group's update direction:
  Adam's for `bert` and `main`, `set_to_zero` for `club` (the main loss never moves the
  estimators, not even through Adam's momentum), after an optional global-norm clip.
  `scale` then turns directions into AdamW updates: -lr(step) * (direction + wd * param),
  with weight decay skipping biases and LayerNorm scales (optax.adamw's arithmetic).
  `optim.adamw=transformers` is the AdamW of transformers (3.0.2, the public MIRD code's)
  instead: epsilon is added to sqrt(v) before the bias correction, so the effective
  epsilon is eps / sqrt(1 - b2^t) (about 32x eps at step 1), and the decay shrinks the
  already-updated param.
- `club`: Adam over the `club` group's leaves only (estimators.club_leaves), so the estimator
  updates never touch, or even differentiate, the model.

The learning-rate schedules (peak, warmup and total steps per group), the weight decay,
the loss weights and the seed are arrays in the train state (`hparams`), not constants of
the compiled step: runs that differ only in their values (another learning rate, more
epochs, another non-zero loss weight, another seed) share one compiled program.

Schedules (`optim.schedule`): `warmup_decay` warms up linearly over `optim.warmup_frac` of
all steps, then decays linearly to 0. `constant` keeps the peak throughout (the public MIB
code has no schedule). `public_ramp` is the public MIRD code's schedule
(its scheduler's arguments swapped): a linear ramp from 0 to the peak over
int(N / batch) x epochs steps, then 0. Our loader drops the last partial batch, so a run
has exactly that many steps and the ramp ends at its last one.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from mird_jax import config_check
from mird_jax.models import factory
from mird_jax.training import param_groups

SCHEDULED = ("bert", "main")  # The groups the main update moves, each with its schedule.


def learning_rate(step, peak, warmup, total):
  """Linear warmup from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`
  (with warmup 0: decay from `peak` at step 0; with total 0: no decay, `peak` after the
  warmup). Works on arrays and Python numbers."""
  step = jnp.asarray(step, jnp.float32)
  up = peak * step / jnp.maximum(warmup, 1.0)
  down = peak * jnp.clip((total - step) / jnp.maximum(total - warmup, 1.0), 0.0, 1.0)
  return jnp.where(step < warmup, up, jnp.where(total > 0, down, peak))


def hparams(config, total_steps: int) -> dict[str, jax.Array]:
  """The run-time hyper-parameters of a run of `total_steps` steps (float32 scalars, and
  the int32 seed of the dropout keys)."""
  o = config.optim
  # Every schedule is learning_rate(): public_ramp is a warmup as long as the run,
  # constant (the public MIB code's) a run without warmup or decay (total 0).
  warmup = {"public_ramp": total_steps, "constant": 0}.get(
      o.schedule, int(round(o.warmup_frac * total_steps)))
  total = 0 if o.schedule == "constant" else max(total_steps, 1)
  h = {f"lr/{g}/peak": getattr(o, f"{g}_lr") for g in SCHEDULED}
  h.update({"lr/warmup": warmup, "lr/total": total,
            "weight_decay": o.weight_decay})
  h.update({f"w/{k}": v for k, v in factory.loss_weights(config).items()})
  out = {k: jnp.asarray(v, jnp.float32) for k, v in h.items()}
  out["seed"] = jnp.asarray(config.seed, jnp.int32)
  return out


def learning_rates(step, h) -> dict[str, jax.Array]:
  return {g: learning_rate(step, h[f"lr/{g}/peak"], h["lr/warmup"], h["lr/total"])
          for g in SCHEDULED}


def decay_mask(params):
  """True where weight decay applies: not on biases, not on LayerNorm scales."""
  def decays(path, _):
    return getattr(path[-1], "key", None) not in ("bias", "scale")
  return jax.tree_util.tree_map_with_path(decays, params)


@dataclasses.dataclass(frozen=True)
class Settings:
  """The optimiser settings that are constants of the compiled step (hashable)."""
  groups: tuple
  b1: float
  b2: float
  eps: float
  grad_clip: float
  club_lr: float
  adamw: str = "optax"  # optax | transformers (the module docstring).

  @classmethod
  def from_config(cls, config) -> "Settings":
    o = config.optim
    return cls(groups=tuple(tuple(rule) for rule in o.groups), b1=o.b1, b2=o.b2, eps=o.eps,
               grad_clip=o.grad_clip, club_lr=config.club.lr, adamw=o.adamw)


def scale_by_transformers_adam(b1: float, b2: float, eps: float):
  """Adam's direction as transformers' AdamW computes it: sqrt(1 - b2^t) / (1 - b1^t) *
  m / (sqrt(v) + eps), epsilon before the bias correction (optax: after it)."""
  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros(), nu=zeros())

  def update(grads, state, params=None):
    del params
    mu = optax.tree.update_moment(grads, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(grads, state.nu, b2, 2)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.float32)
    step_size = jnp.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
    directions = jax.tree.map(lambda m, v: step_size * m / (jnp.sqrt(v) + eps), mu, nu)
    return directions, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)
  return optax.GradientTransformation(init, update)


def make(settings: Settings, params):
  """Returns (tx_main, tx_club) for `params`."""
  labels = param_groups.label_tree(params, settings.groups)
  config_check.require_choice("optim.adamw", settings.adamw)
  kind = (optax.scale_by_adam if settings.adamw == "optax" else scale_by_transformers_adam)
  adam = lambda: kind(b1=settings.b1, b2=settings.b2, eps=settings.eps)
  tx_main = optax.multi_transform({"bert": adam(), "main": adam(), "club": optax.set_to_zero()},
                                  labels)
  if settings.grad_clip > 0:
    tx_main = optax.chain(optax.clip_by_global_norm(settings.grad_clip), tx_main)
  return tx_main, optax.adam(settings.club_lr)


@functools.lru_cache(maxsize=8)
def make_for(model, settings: Settings):
  """(tx_main, tx_club) for `model`'s params: the same objects for the same (model,
  settings), so that the state a run builds and the step the jit cache keeps agree."""
  shapes = jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))
  return make(settings, shapes)


def scale(directions, params, step, h, rules, decay_updated: bool = False):
  """AdamW updates from Adam directions: -lr_group(step) * (d + wd * p) where decay applies
  (with `decay_updated`, transformers' order: the decay shrinks p - lr * d, the param
  after the Adam step); `club` leaves (direction 0 from set_to_zero) get exactly 0."""
  lrs = learning_rates(step, h)
  labels = param_groups.label_tree(params, rules)

  def update(d, p, label, decays):
    if label == "club":
      return jnp.zeros_like(d)
    if decays and decay_updated:
      p = p - lrs[label] * d
    decay = h["weight_decay"] * p if decays else 0.0
    return (-lrs[label] * (d + decay)).astype(d.dtype)
  return jax.tree.map(update, directions, params, labels, decay_mask(params))
