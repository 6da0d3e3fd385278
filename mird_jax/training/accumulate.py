"""Gradient accumulation (`optim.accumulate_steps = k`): the gradient of the loss of a whole
batch, computed k microbatches at a time, so that a large batch (the paper's 48 labelled +
96 unlabelled) fits in a small accelerator's memory.

Averaging per-microbatch gradients would not give the batch's gradient here: the log
combine takes the log of batch means, and CLUB's bound and the orthogonality penalty are
functions of batch statistics. Every term is instead a function F of sums over rows
(mird_jax/training/objective.py), which add up across microbatches, so the batch's gradient is
sum_j (dF/dS)(S) . dS_j/dtheta. Two passes over the microbatches compute it exactly:

  1. forward only: S = sum_j S_j, the loss terms and total from S, and g = dF/dS at S;
  2. forward and backward: accumulate the gradient of <g, S_j(theta)> over j.

The cost is one extra forward per update; the memory is one microbatch's activations and
one gradient accumulator. Microbatch j takes rows j, j + k, j + 2k, ... of the labelled
and of the unlabelled batch: each device's rows split into k parts in place, with no data
moved between devices. Each microbatch gets its own dropout key (fold_in of the step's key
and j), so with dropout (or MIB's bottleneck noise) the update is a different draw from the
same distribution as the whole batch's; without, it is the same update
(tests/training/test_accumulate.py).
"""

import jax
import jax.numpy as jnp

from data_pipelines import example
from mird_jax.training import objective


def split(tree, k: int):
  """[B, ...] leaves -> [k, B / k, ...]: microbatch j holds rows j, j + k, ..."""
  def one(x):
    return jnp.moveaxis(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 1, 0)
  return jax.tree.map(one, tree)


def merge(tree):
  """The inverse of `split`: [k, B / k, ...] -> [B, ...] in the batch's row order. Also for
  microbatches of labelled then unlabelled rows (n / k + u / k each): row i of microbatch j
  lands at i k + j, which is labelled row i k + j for i < n / k and unlabelled row
  (i - n / k) k + j after the n labelled ones, the joint batch's order."""
  def one(x):
    return jnp.moveaxis(x, 0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])
  return jax.tree.map(one, tree)


def _add(a, b):
  return jax.tree.map(jnp.add, a, b)


def _latents(aux, model):
  return jax.lax.stop_gradient({k: aux[k] for k in type(model).LATENTS})


def _microbatches(batch, unlabeled, k: int):
  """[k, ...] stacked microbatches: each with its share of the labelled rows (and labels)
  and of the unlabelled rows, and its index j."""
  return {"batch": split({n: batch[n] for n in (*example.MODEL_KEYS, "label")}, k),
          "unlabeled": None if unlabeled is None else split(
              {n: unlabeled[n] for n in example.MODEL_KEYS}, k),
          "j": jnp.arange(k)}


def main_gradient(params, batch, unlabeled, key, hparams, *, model, cfg, k: int):
  """(total, terms, latents, grads) of the main loss on the labelled `batch` and the
  `unlabeled` rows (or None) with dropout `key`; with k > 1, computed k microbatches at a
  time (see above). The latents' rows are the labelled ones, then the unlabelled ones."""
  if k == 1:
    (total, (terms, aux)), grads = jax.value_and_grad(objective.main_objective, has_aux=True)(
        params, objective.joint_batch(batch, unlabeled), batch["label"], key, hparams,
        model=model, cfg=cfg)
    return total, terms, _latents(aux, model), grads
  micro = _microbatches(batch, unlabeled, k)

  def sums_of(p, mb):
    return objective.forward_sums(p, objective.joint_batch(mb["batch"], mb["unlabeled"]),
                                  mb["batch"]["label"], jax.random.fold_in(key, mb["j"]),
                                  model=model, cfg=cfg)

  def forward(acc, mb):
    sums, aux = sums_of(params, mb)
    return _add(acc, sums), _latents(aux, model)

  shapes, _ = jax.eval_shape(sums_of, params, jax.tree.map(lambda x: x[0], micro))
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  sums, z_k = jax.lax.scan(forward, zeros, micro)

  def from_sums(s):
    terms = objective.finish(s)
    return objective.total(terms, hparams, cfg), terms

  (total, terms), g_sums = jax.value_and_grad(from_sums, has_aux=True)(sums)

  def backward(acc, mb):
    linear = lambda p: sum(jnp.vdot(g, s) for g, s in zip(
        jax.tree.leaves(g_sums), jax.tree.leaves(sums_of(p, mb)[0])))
    return _add(acc, jax.grad(linear)(params)), None

  grads, _ = jax.lax.scan(backward, jax.tree.map(jnp.zeros_like, params), micro)
  return total, terms, merge(z_k), grads


def refreshed_latents(params, batch, unlabeled, key, *, model, k: int):
  """The latents of a training-mode forward with dropout `key` on the labelled `batch` and
  the `unlabeled` rows (club.refresh_latents), k microbatches at a time."""
  def latents_of(b, u, key_j):
    z, _ = model.apply({"params": params}, objective.joint_batch(b, u), deterministic=False,
                       rngs={"dropout": key_j}, method="latents")
    return jax.lax.stop_gradient(z)
  if k == 1:
    return latents_of(batch, unlabeled, key)
  _, z_k = jax.lax.scan(lambda c, mb: (c, latents_of(
      mb["batch"], mb["unlabeled"], jax.random.fold_in(key, mb["j"]))), None,
                        _microbatches(batch, unlabeled, k))
  return merge(z_k)
