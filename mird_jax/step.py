"""The train state and the pure, jit-compiled train and eval steps (design.md, 2).

One `train_step` = one main update (gradient of the main loss for `bert` + `main`; the
estimators are constants there and `set_to_zero` keeps them still) followed by `club.steps`
estimator updates in a `lax.scan`, each maximising the CLUB log-likelihood on the
stop-gradient latents of this step (or on fresh-dropout latents with
`club.refresh_latents`). Dropout keys are derived from (seed, step), never carried.
"""

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from mird_jax import club
from mird_jax import losses
from mird_jax import model as model_lib
from mird_jax import optim
from mird_jax import parallel
from mird_jax import param_groups

_DROPOUT, _REFRESH = 0, 1  # fold_in tags of the per-step key.


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_main: Any
  opt_club: Any


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static settings the step closes over (hashable, derived from the config)."""
  task: str
  combine: str
  log_eps: float
  weights: tuple[tuple[str, float], ...]
  constraint: str
  club_steps: int
  refresh_latents: bool
  text_target: str
  seed: int

  @classmethod
  def from_config(cls, config) -> "StepConfig":
    l = config.loss
    weights = {"task": l.w_task, "recon/text": l.w_recon_text, "recon/audio": l.w_recon_audio,
               "recon/vision": l.w_recon_vision}
    if config.model.constraint == "mim":
      weights.update({f"mi/{x}_{y}": l.w_mi for x, y in club.PAIRS})
    elif config.model.constraint == "orthogonal":
      weights.update({f"orthogonal/s_{m}": l.w_orthogonal for m in "lav"})
    return cls(l.task, l.combine, l.log_eps, tuple((k, v) for k, v in weights.items() if v),
               config.model.constraint, config.club.steps, config.club.refresh_latents,
               config.model.text_recon_target, config.seed)


def club_leaves(params, rules) -> dict[str, jax.Array]:
  """The estimators' params as a flat {path: leaf} dict (the `club` group)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  labels = flax.traverse_util.flatten_dict(param_groups.label_tree(params, rules), sep="/")
  return {p: v for p, v in flat.items() if labels[p] == "club"}


def with_leaves(params, leaves: dict[str, jax.Array]):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  return flax.traverse_util.unflatten_dict({**flat, **leaves}, sep="/")


def create_state(params, tx_main, tx_club, rules) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_main=tx_main.init(params),
                    opt_club=tx_club.init(club_leaves(params, rules)))


_MODEL_INPUTS = ("text_ids", "text_mask", "text_type", "audio", "audio_len", "vision",
                 "vision_len")


def _joint_batch(batch, unlabeled):
  """The model's inputs: labelled rows first, then unlabelled ones, for one forward pass."""
  if unlabeled is None:
    return {k: batch[k] for k in _MODEL_INPUTS}
  return {k: jnp.concatenate([batch[k], unlabeled[k]], axis=0) for k in _MODEL_INPUTS}


def loss_terms(pred_B, aux, stats, joint, labels_B, cfg: StepConfig):
  """Every main-loss term with a non-zero weight, by name (all scalars)."""
  weights = dict(cfg.weights)
  terms = {}
  if "task" in weights:
    terms["task"] = losses.task_loss(pred_B[:labels_B.shape[0]], labels_B, cfg.task)
  if "recon/text" in weights:
    terms["recon/text"] = (
        losses.recon_tokens_ce(aux["recon_text"], joint["text_ids"], joint["text_mask"])
        if cfg.text_target == "vocab_logits" else
        losses.recon_tokens_mse(aux["recon_text"], aux["text_target"], joint["text_mask"]))
  for m in ("audio", "vision"):
    if f"recon/{m}" in weights:
      terms[f"recon/{m}"] = losses.recon_frames(aux[f"recon_{m}"], joint[m], joint[f"{m}_len"])
  for (x, y), (mu, logvar) in stats.items():
    if f"mi/{x}_{y}" in weights:
      terms[f"mi/{x}_{y}"] = losses.club_upper_bound(mu, logvar, aux[f"z_{y}"])
  if cfg.constraint == "orthogonal":
    for m in "lav":
      if f"orthogonal/s_{m}" in weights:
        terms[f"orthogonal/s_{m}"] = losses.orthogonality(aux["z_s"], aux[f"z_{m}"])
  return terms


def estimator_nll(leaves, params, z, model):
  """-sum over pairs of the CLUB log-likelihood, as a function of the estimator leaves."""
  stats = model.apply({"params": with_leaves(params, leaves)}, z,
                      method=model_lib.MIRD.club_stats)
  return -sum(losses.club_log_likelihood(mu, lv, z[f"z_{y}"]) for (_, y), (mu, lv)
              in stats.items())


def train_step(state: TrainState, batch, unlabeled, *, model, tx_main, tx_club, rules,
               cfg: StepConfig, schedules):
  """One main update and `cfg.club_steps` estimator updates; returns (state, metrics)."""
  key = jax.random.fold_in(jax.random.key(cfg.seed), state.step)
  joint = _joint_batch(batch, unlabeled)

  def main_loss(params):
    pred, aux = model.apply({"params": params}, joint, False, True,
                            rngs={"dropout": jax.random.fold_in(key, _DROPOUT)})
    frozen = jax.lax.stop_gradient(params)  # The estimators are constants here.
    stats = model.apply({"params": frozen}, aux, method=model_lib.MIRD.club_stats)
    terms = loss_terms(pred, aux, stats, joint, batch["label"], cfg)
    total = losses.combine(terms, dict(cfg.weights), cfg.combine, cfg.log_eps)
    return total, (terms, aux)

  (total, (terms, aux)), grads = jax.value_and_grad(main_loss, has_aux=True)(state.params)
  updates, opt_main = tx_main.update(grads, state.opt_main, state.params)
  params = optax.apply_updates(state.params, updates)
  z = jax.lax.stop_gradient({k: aux[k] for k in ("z_s", "z_l", "z_a", "z_v")})

  def estimator_update(carry, i):
    leaves, opt_club = carry
    z_i = z
    if cfg.refresh_latents:  # The public code's way: a new forward, fresh dropout.
      z_i, _ = model.apply({"params": params}, joint, False,
                           rngs={"dropout": jax.random.fold_in(key, _REFRESH + i)},
                           method=model_lib.MIRD.latents)
      z_i = jax.lax.stop_gradient(z_i)
    nll, g = jax.value_and_grad(estimator_nll)(leaves, params, z_i, model)
    upd, opt_club = tx_club.update(g, opt_club)
    return (optax.apply_updates(leaves, upd), opt_club), nll

  leaves, opt_club = club_leaves(params, rules), state.opt_club
  metrics = {"loss": total, **{f"loss/{k}": v for k, v in terms.items()},
             "grad_norm": optax.tree.norm(grads)}
  if cfg.constraint == "mim" and cfg.club_steps > 0:
    (leaves, opt_club), nlls = jax.lax.scan(estimator_update, (leaves, opt_club),
                                            jnp.arange(cfg.club_steps))
    params = with_leaves(params, leaves)
    metrics["club_nll"] = nlls[-1]
  metrics.update({f"lr/{g}": s(state.step) for g, s in schedules.items()})
  new_state = TrainState(step=state.step + 1, params=params, opt_main=opt_main,
                         opt_club=opt_club)
  return new_state, metrics


def eval_step(params, batch, *, model):
  """Deterministic predictions [B] (no reconstructions: they are not needed to score)."""
  pred, _ = model.apply({"params": params}, _joint_batch(batch, None), True, False)
  return pred


def jit_train_step(config, model, mesh, params_shapes, total_steps: int, donate: bool = True):
  """(jitted train_step, tx_main, tx_club) for `model` on `mesh`: params replicated, batches
  sharded on `data`, the state donated."""
  tx_main, tx_club, schedules = optim.make(config, params_shapes, total_steps)
  rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  fn = jax.jit(functools.partial(train_step, model=model, tx_main=tx_main, tx_club=tx_club,
                                 rules=config.optim.groups, cfg=StepConfig.from_config(config),
                                 schedules=schedules),
               in_shardings=(rep, data, data), out_shardings=(rep, rep),
               donate_argnums=(0,) if donate else ())
  return fn, tx_main, tx_club
