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
computed k microbatches at a time (mird_jax/training/accumulate.py); the estimator updates, the
schedule and the step counter still count optimiser updates. The estimator fit itself is
mird_jax/training/estimators.py.
"""

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from mird_jax.models import factory
from mird_jax.training import accumulate
from mird_jax.training import estimators
from mird_jax.training import objective
from mird_jax.training import optim
from mird_jax.training import sharding

_DROPOUT, _REFRESH = 0, 1  # fold_in tags of the per-step key.


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
  estimators: bool  # The model has the CLUB networks (its spec's `estimators`).
  club_steps: int
  refresh_latents: bool
  text_target: str
  kl_reduce: str  # MIB: mean or sum of the KL over the bottleneck's dims.
  accumulate: int  # Microbatches per update (optim.accumulate_steps; accumulate.py).
  scale_free: bool  # loss.scale_free: the penalties read standardised latents.

  @classmethod
  def from_config(cls, config, model) -> "StepConfig":
    """The settings of `model`'s step under `config` (built once per run: experiment.py)."""
    spec = model.spec
    nonzero = {f"w/{k}" for k, v in factory.loss_weights(config).items() if v}
    return cls(task=config.loss.task, combine=config.loss.combine,
               log_eps=config.loss.log_eps,
               terms=tuple(t for t in type(model).loss_terms(spec)
                           if objective.weight_key(t) in nonzero),
               constraint=spec.constraint, estimators=spec.estimators,
               club_steps=config.club.steps, refresh_latents=config.club.refresh_latents,
               text_target=config.model.text_recon_target,
               kl_reduce=config.model.mib.kl_reduce,
               accumulate=config.optim.accumulate_steps,
               scale_free=config.loss.scale_free)


def refresh_keys(key, n: int):
  """The dropout keys of the `n` refreshed forwards (club.refresh_latents): one per
  estimator update, each distinct from the others and from the main forward's."""
  return jax.vmap(lambda i: jax.random.fold_in(key, _REFRESH + i))(jnp.arange(n))


def create_state(params, tx_main, tx_club, rules, hparams) -> TrainState:
  """The state before the first step. One compiled program per (optimisers, rules): made
  one eager op at a time, the optimisers' ~500 zero leaves took 0.1 s a call on a CPU."""
  return _jit_create_state(tx_main, tx_club, tuple(map(tuple, rules)))(params, hparams)


def _create_state(params, hparams, *, tx_main, tx_club, rules) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_main=tx_main.init(params),
                    opt_club=tx_club.init(estimators.club_leaves(params, rules)),
                    hparams=hparams)


@functools.lru_cache(maxsize=8)
def _jit_create_state(tx_main, tx_club, rules):
  return jax.jit(functools.partial(_create_state, tx_main=tx_main, tx_club=tx_club,
                                   rules=rules))


def train_step(state: TrainState, batch, unlabeled, *, model, tx_main, tx_club, rules,
               cfg: StepConfig, decay_updated: bool = False):
  """One main update and `cfg.club_steps` estimator updates; returns (state, metrics).
  `decay_updated`: transformers' AdamW order of the weight decay (optim.scale)."""
  key = jax.random.fold_in(jax.random.key(state.hparams["seed"]), state.step)
  total, terms, z, grads = accumulate.main_gradient(
      state.params, batch, unlabeled, jax.random.fold_in(key, _DROPOUT), state.hparams,
      model=model, cfg=cfg, k=cfg.accumulate)
  # Named scopes label the optimiser's and the estimators' ops in profiles
  # (mird_jax/tools/profile.py); they change nothing else.
  with jax.named_scope("main_update"):
    directions, opt_main = tx_main.update(grads, state.opt_main, state.params)
    updates = optim.scale(directions, state.params, state.step, state.hparams, rules,
                          decay_updated)
    params = optax.apply_updates(state.params, updates)
  metrics = {"loss": total, **{f"loss/{k}": v for k, v in terms.items()},
             "grad_norm": optax.tree.norm(grads)}
  opt_club = state.opt_club
  if cfg.estimators and cfg.club_steps > 0:
    with jax.named_scope("estimator_updates"):
      params, opt_club, metrics["club_nll/start"], metrics["club_nll"] = estimators.fit(
          params, opt_club, z, batch, unlabeled, refresh_keys(key, cfg.club_steps),
          model=model, tx_club=tx_club,
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
  if model.spec.sample_at_eval:
    return {"sample": jax.random.fold_in(jax.random.key(0), batch["position"][0])}
  return {}


def eval_step(params, batch, *, model):
  """Deterministic predictions [B] (no reconstructions: they are not needed to score)."""
  pred, _ = model.apply({"params": params}, objective.joint_batch(batch, None), deterministic=True,
                        reconstruct=False, rngs=eval_rngs(model, batch))
  return pred


@functools.lru_cache(maxsize=8)
def jit_train_step(model, mesh, cfg: StepConfig, settings: optim.Settings,
                   donate: bool = True):
  """The jitted train_step for `model` on `mesh` with the optimisers `optim.make_for(model,
  settings)`: params replicated, batches sharded on `data`, the state donated. The program
  does not depend on the values in the state's hparams, so one jitted function, traced and
  compiled once per process, serves every config that differs only in them."""
  tx_main, tx_club = optim.make_for(model, settings)
  rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(functools.partial(train_step, model=model, tx_main=tx_main, tx_club=tx_club,
                                   rules=settings.groups, cfg=cfg,
                                   decay_updated=settings.adamw == "transformers"),
                 in_shardings=(rep, data, data), out_shardings=(rep, rep),
                 donate_argnums=(0,) if donate else ())


@functools.lru_cache(maxsize=8)
def jit_eval_step(model, mesh):
  """The jitted eval step for `model` on `mesh` (one per process)."""
  rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(functools.partial(eval_step, model=model), in_shardings=(rep, data),
                 out_shardings=data)
