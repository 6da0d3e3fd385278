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
from mird_jax import mib
from mird_jax import model as model_lib
from mird_jax import models
from mird_jax import optim
from mird_jax import parallel
from mird_jax import param_groups

_DROPOUT, _REFRESH = 0, 1  # fold_in tags of the per-step key.
_SAMPLE = 2  # fold_in tag of the bottleneck noise key, from the dropout key.
LATENTS = model_lib.MIRD.LATENTS  # What the estimators are fitted on.


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_main: Any
  opt_club: Any
  hparams: dict[str, jax.Array]  # optim.hparams: schedules, weight decay, loss weights.


def weight_key(term: str) -> str:
  """The hparams entry that weights a loss term ("mi/s_a" -> "w/mi")."""
  family, _, part = term.partition("/")
  return {"task": "w/task", "recon": f"w/recon_{part}", "mi": "w/mi",
          "orthogonal": "w/orthogonal", "kl": "w/kl"}[family]


def mib_terms(variant: str) -> list[str]:
  """The loss terms of a MIB variant: the fused prediction's task loss, and per bottleneck
  its KL (and, for the unimodal ones, its own prediction's task loss)."""
  terms = ["task"]
  if mib.unimodal_bottlenecks(variant):
    terms += [f"task/{m}" for m in "lav"] + [f"kl/{m}" for m in "lav"]
  if mib.fused_bottleneck(variant):
    terms.append("kl/f")
  return terms


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

  @classmethod
  def from_config(cls, config) -> "StepConfig":
    l, m = config.loss, config.model
    mird = m.name == "mird"
    if mird:
      terms = ["task", "recon/text", "recon/audio", "recon/vision"]
      if m.constraint == "mim":
        terms += [f"mi/{x}_{y}" for x, y in club.PAIRS]
      elif m.constraint == "orthogonal":
        terms += [f"orthogonal/s_{x}" for x in "lav"]
    else:
      terms = mib_terms(m.mib.variant)
    nonzero = {f"w/{k}" for k, v in optim.loss_weights(config).items() if v}
    return cls(task=l.task, combine=l.combine, log_eps=l.log_eps,
               terms=tuple(t for t in terms if weight_key(t) in nonzero),
               constraint=m.constraint if mird else "none",
               estimators=mird and (m.constraint == "mim" or config.club.monitor),
               club_steps=config.club.steps, refresh_latents=config.club.refresh_latents,
               text_target=m.text_recon_target, kl_reduce=m.mib.kl_reduce)


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


_MODEL_INPUTS = ("text_ids", "text_mask", "text_type", "audio", "audio_len", "vision",
                 "vision_len")


def joint_batch(batch, unlabeled):
  """The model's inputs: labelled rows first, then unlabelled ones, for one forward pass."""
  if unlabeled is None:
    return {k: batch[k] for k in _MODEL_INPUTS}
  return {k: jnp.concatenate([batch[k], unlabeled[k]], axis=0) for k in _MODEL_INPUTS}


def dropout_key(seed: int, step):
  """The main forward's dropout key at `step`: a pure function of (seed, step)."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), _DROPOUT)


def loss_terms(pred_B, aux, stats, joint, labels_B, cfg: StepConfig):
  """Every main-loss term with a non-zero weight, by name (all scalars)."""
  weights = set(cfg.terms)
  terms = {}
  if "task" in weights:
    terms["task"] = losses.task_loss(pred_B[:labels_B.shape[0]], labels_B, cfg.task)
  terms.update(bottleneck_terms(aux, labels_B, cfg, only=weights))
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


def bottleneck_terms(outputs, labels_B, cfg: StepConfig, only=None) -> dict:
  """MIB's per-bottleneck terms among `outputs` (the model's aux in training, a split's
  diagnostic rows): each unimodal decoder's task loss (`task/m`, from `pred_m` on the
  labelled rows, which come first) and each bottleneck's KL (`kl/m`, from `mu_m` and
  `log_sigma_m`); with `only`, just the names in it."""
  n = labels_B.shape[0]
  terms = {}
  for m in "lav":
    if f"pred_{m}" in outputs and (only is None or f"task/{m}" in only):
      terms[f"task/{m}"] = losses.task_loss(outputs[f"pred_{m}"][:n], labels_B, cfg.task)
  for m in "lavf":
    if f"mu_{m}" in outputs and (only is None or f"kl/{m}" in only):
      terms[f"kl/{m}"] = losses.gaussian_kl(outputs[f"mu_{m}"], outputs[f"log_sigma_{m}"],
                                           cfg.kl_reduce)
  return terms


def main_objective(params, joint, labels_B, key, hparams, *, model, cfg: StepConfig):
  """(total main loss, (terms, aux)) of one training-mode forward with dropout `key`.

  The estimators enter as constants: the main loss never differentiates them.
  """
  pred, aux = model.apply({"params": params}, joint, deterministic=False, reconstruct=True,
                          rngs={"dropout": key, "sample": jax.random.fold_in(key, _SAMPLE)})
  stats = {}
  if cfg.constraint == "mim":  # A monitoring-only estimator stays out of the main loss.
    frozen = jax.lax.stop_gradient(params)
    stats = model.apply({"params": frozen}, aux, method=model_lib.MIRD.club_stats)
  terms = loss_terms(pred, aux, stats, joint, labels_B, cfg)
  weights = {t: hparams[weight_key(t)] for t in terms}
  return losses.combine(terms, weights, cfg.combine, cfg.log_eps), (terms, aux)


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


def _fit_estimators(params, opt_club, z, joint, key, *, model, tx_club, rules, cfg):
  """`cfg.club_steps` Adam updates of the estimator leaves; returns (params, opt_club,
  estimator NLL on this step's latents before and after them)."""

  def update(carry, i):
    leaves, opt = carry
    z_i = z
    if cfg.refresh_latents:  # The public code's way: a new forward, fresh dropout.
      z_i, _ = model.apply({"params": params}, joint, deterministic=False,
                           rngs={"dropout": jax.random.fold_in(key, _REFRESH + i)},
                           method=model_lib.MIRD.latents)
      z_i = jax.lax.stop_gradient(z_i)
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
  joint = joint_batch(batch, unlabeled)
  objective = functools.partial(main_objective, model=model, cfg=cfg)
  (total, (terms, aux)), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params, joint, batch["label"], jax.random.fold_in(key, _DROPOUT), state.hparams)
  directions, opt_main = tx_main.update(grads, state.opt_main, state.params)
  updates = optim.scale(directions, state.params, state.step, state.hparams, rules)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": total, **{f"loss/{k}": v for k, v in terms.items()},
             "grad_norm": optax.tree.norm(grads)}
  opt_club = state.opt_club
  if cfg.estimators and cfg.club_steps > 0:
    z = jax.lax.stop_gradient({k: aux[k] for k in LATENTS})
    params, opt_club, metrics["club_nll/start"], metrics["club_nll"] = _fit_estimators(
        params, opt_club, z, joint, key, model=model, tx_club=tx_club, rules=rules, cfg=cfg)
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
  pred, _ = model.apply({"params": params}, joint_batch(batch, None), deterministic=True,
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
