"""The train state and the pure, jit-compiled train and eval steps.

One `train_step` = one main update (gradient of the main loss for `bert` + `main`; the
estimators are constants there and `set_to_zero` keeps them still) followed by `club.steps`
estimator updates in a `lax.scan`, each maximising the CLUB log-likelihood on the
stop-gradient latents of this step (or on fresh-dropout latents with
`club.refresh_latents`). Dropout keys are derived from (seed, step), never carried; the
seed is a value in the state's hparams, so every seed of a multi-seed run shares one program.
With `club.monitor` the estimators are fitted under constraint none/orthogonal too, as a
measurement that never enters the main loss. A model without estimators (MIB) gets the main
update only; its bottlenecks draw their noise from a "sample" stream derived like dropout's.
With `optim.accumulate_steps` = k the main gradient and the estimators' refreshed latents are
computed k microbatches at a time (mird_jax/accumulate.py); the estimator updates, the
schedule and the step counter still count optimiser updates.
"""

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from mird_jax import accumulate
from mird_jax import losses
from mird_jax import model as model_lib
from mird_jax import models
from mird_jax import objective
from mird_jax import optim
from mird_jax import parallel
from mird_jax import param_groups

_DROPOUT, _REFRESH = 0, 1  # fold_in tags of the per-step key.
LATENTS = model_lib.MIRD.LATENTS  # What the estimators are fitted on.


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_main: Any
  opt_club: Any
  hparams: dict[str, jax.Array]  # optim.hparams: schedules, weight decay, loss weights.


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static settings the step closes over (hashable, derived from the config)."""
  task: str
  combine: str
  log_eps: float
  terms: tuple[str, ...]  # The loss terms computed: those with a non-zero config weight.
  constraint: str
  estimators: bool  # The model has the CLUB networks (model.ModelSpec.estimators).
  club_steps: int
  refresh_latents: bool
  text_target: str
  kl_reduce: str  # MIB: mean or sum of the KL over the bottleneck's dims.
  accumulate: int  # Microbatches per update (optim.accumulate_steps; mird_jax/accumulate.py).

  @classmethod
  def from_config(cls, config) -> "StepConfig":
    l, m = config.loss, config.model
    mird = m.name == "mird"
    terms = objective.mird_terms(m.constraint) if mird else objective.mib_terms(m.mib.variant)
    nonzero = {f"w/{k}" for k, v in optim.loss_weights(config).items() if v}
    return cls(task=l.task, combine=l.combine, log_eps=l.log_eps,
               terms=tuple(t for t in terms if objective.weight_key(t) in nonzero),
               constraint=m.constraint if mird else "none",
               estimators=mird and (m.constraint == "mim" or config.club.monitor),
               club_steps=config.club.steps, refresh_latents=config.club.refresh_latents,
               text_target=m.text_recon_target, kl_reduce=m.mib.kl_reduce,
               accumulate=config.optim.accumulate_steps)


def club_leaves(params, rules) -> dict[str, jax.Array]:
  """The estimators' params as a flat {path: leaf} dict (the `club` group)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  labels = flax.traverse_util.flatten_dict(param_groups.label_tree(params, rules), sep="/")
  return {p: v for p, v in flat.items() if labels[p] == "club"}


def with_leaves(params, leaves: dict[str, jax.Array]):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  return flax.traverse_util.unflatten_dict({**flat, **leaves}, sep="/")


def create_state(params, tx_main, tx_club, rules, hparams) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_main=tx_main.init(params),
                    opt_club=tx_club.init(club_leaves(params, rules)), hparams=hparams)


def dropout_key(seed: int, step):
  """The main forward's dropout key at `step`: a pure function of (seed, step)."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), _DROPOUT)


def estimator_loglik(leaves, params, z, model):
  """Sum over pairs of the CLUB log-likelihood of the latents `z`, as a function of the
  estimator leaves: what the estimators maximise, and what their metrics report."""
  stats = model.apply({"params": with_leaves(params, leaves)}, z,
                      method=model_lib.MIRD.club_stats)
  return sum(losses.club_log_likelihood(mu, lv, z[f"z_{y}"]) for (_, y), (mu, lv)
             in stats.items())


def estimator_loss(leaves, params, z, model):
  """What the estimator updates minimise (reported separately, as -estimator_loglik)."""
  return -estimator_loglik(leaves, params, z, model)


def _fit_estimators(params, opt_club, z, batch, unlabeled, key, *, model, tx_club, rules,
                    cfg):
  """`cfg.club_steps` Adam updates of the estimator leaves; returns (params, opt_club,
  estimator NLL on this step's latents before and after them)."""

  def update(carry, i):
    leaves, opt = carry
    z_i = z
    if cfg.refresh_latents:  # The public code's way: a new forward, fresh dropout.
      z_i = accumulate.refreshed_latents(params, batch, unlabeled,
                                         jax.random.fold_in(key, _REFRESH + i), model=model,
                                         k=cfg.accumulate)
    g = jax.grad(estimator_loss)(leaves, params, z_i, model)
    upd, opt = tx_club.update(g, opt)
    return (optax.apply_updates(leaves, upd), opt), None

  start = club_leaves(params, rules)
  (leaves, opt_club), _ = jax.lax.scan(update, (start, opt_club), jnp.arange(cfg.club_steps))
  nll_start = -estimator_loglik(start, params, z, model)
  nll_end = -estimator_loglik(leaves, params, z, model)
  return with_leaves(params, leaves), opt_club, nll_start, nll_end


def train_step(state: TrainState, batch, unlabeled, *, model, tx_main, tx_club, rules,
               cfg: StepConfig):
  """One main update and `cfg.club_steps` estimator updates; returns (state, metrics)."""
  key = jax.random.fold_in(jax.random.key(state.hparams["seed"]), state.step)
  total, terms, z, grads = accumulate.main_gradient(
      state.params, batch, unlabeled, jax.random.fold_in(key, _DROPOUT), state.hparams,
      model=model, cfg=cfg, k=cfg.accumulate)
  # Named scopes label the optimiser's and the estimators' ops in profiles
  # (mird_jax/step_profile.py); they change nothing else.
  with jax.named_scope("main_update"):
    directions, opt_main = tx_main.update(grads, state.opt_main, state.params)
    updates = optim.scale(directions, state.params, state.step, state.hparams, rules)
    params = optax.apply_updates(state.params, updates)
  metrics = {"loss": total, **{f"loss/{k}": v for k, v in terms.items()},
             "grad_norm": optax.tree.norm(grads)}
  opt_club = state.opt_club
  if cfg.estimators and cfg.club_steps > 0:
    with jax.named_scope("estimator_updates"):
      params, opt_club, metrics["club_nll/start"], metrics["club_nll"] = _fit_estimators(
          params, opt_club, z, batch, unlabeled, key, model=model, tx_club=tx_club,
          rules=rules, cfg=cfg)
  metrics.update({f"lr/{g}": lr for g, lr in optim.learning_rates(state.step,
                                                                   state.hparams).items()})
  new_state = TrainState(step=state.step + 1, params=params, opt_main=opt_main,
                         opt_club=opt_club, hparams=state.hparams)
  return new_state, metrics


def eval_rngs(model, batch) -> dict:
  """The random streams of an evaluation forward: none, unless the model samples at
  evaluation (MIB's `sample_at_eval`); then a key from the batch's first dataset position,
  so that a stochastic evaluation is still the same on every run."""
  if getattr(model.spec, "sample_at_eval", False):
    return {"sample": jax.random.fold_in(jax.random.key(0), batch["position"][0])}
  return {}


def eval_step(params, batch, *, model):
  """Deterministic predictions [B] (no reconstructions: they are not needed to score)."""
  pred, _ = model.apply({"params": params}, objective.joint_batch(batch, None), deterministic=True,
                        reconstruct=False, rngs=eval_rngs(model, batch))
  return pred


@functools.lru_cache(maxsize=8)
def _jitted_train_step(model, mesh, cfg: StepConfig, settings: optim.Settings, donate: bool):
  shapes = jax.eval_shape(lambda: models.init_params(model, jax.random.key(0)))
  tx_main, tx_club = optim.make(settings, shapes)
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  fn = jax.jit(functools.partial(train_step, model=model, tx_main=tx_main, tx_club=tx_club,
                                 rules=settings.groups, cfg=cfg),
               in_shardings=(rep, data, data), out_shardings=(rep, rep),
               donate_argnums=(0,) if donate else ())
  return fn, tx_main, tx_club


def jit_train_step(config, model, mesh, donate: bool = True):
  """(jitted train_step, tx_main, tx_club) for `model` on `mesh`: params replicated, batches
  sharded on `data`, the state donated. The program does not depend on the values in the
  state's hparams, so one jitted function, traced and compiled once per process, serves
  every config that differs only in them."""
  return _jitted_train_step(model, mesh, StepConfig.from_config(config),
                            optim.Settings.from_config(config), donate)


@functools.lru_cache(maxsize=8)
def jit_eval_step(model, mesh):
  """The jitted eval step for `model` on `mesh` (one per process)."""
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  return jax.jit(functools.partial(eval_step, model=model), in_shardings=(rep, data),
                 out_shardings=data)
