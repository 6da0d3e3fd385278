"""Gradient accumulation (optim.accumulate_steps): k microbatches give the whole batch's
loss terms, gradient and update, including the terms that are not means over rows (the
log combine, CLUB's bound, orthogonality), with the estimator updates, the schedule and
the step counter counted per optimiser update.

Dropout is off in the comparisons: with it, each microbatch draws its own masks, so the
update is another draw from the same distribution rather than the same numbers.
"""

import re

import flax
import jax
import numpy as np
import pytest

import reference
from mird_jax import config_check
from mird_jax.models import factory
from mird_jax.runs import experiment
from mird_jax.training import accumulate
from mird_jax.training import losses
from mird_jax.training import sharding
import smoke
from smoke import smoke_config


def _sums_add_up(sums_fn, finish, *arrays, cut=3):
  whole = sums_fn(*arrays)
  parts = [sums_fn(*(a[:cut] for a in arrays)), sums_fn(*(a[cut:] for a in arrays))]
  added = jax.tree.map(lambda a, b: a + b, *parts)
  for a, b in zip(jax.tree.leaves(added), jax.tree.leaves(whole)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  return float(finish(whole)), float(finish(added))


def test_every_loss_is_a_function_of_sums_that_add_up_over_parts_of_the_batch():
  rng = np.random.default_rng(0)
  b, d = 7, 4
  mu, lv = rng.normal(size=(b, d)).astype(np.float32), np.tanh(rng.normal(size=(b, d)))
  # Latents far from 0 and of unequal spread: the moment form must still be exact.
  y = (0.7 * rng.normal(size=(b, d)) + 3.0).astype(np.float32)
  whole, added = _sums_add_up(losses.club_sums, losses.club_bound, mu, lv.astype(np.float32), y)
  expected = float(reference.club_upper_bound_pairwise(mu, lv, y))
  assert whole == pytest.approx(expected, rel=1e-4, abs=1e-5)
  assert added == pytest.approx(expected, rel=1e-4, abs=1e-5)
  whole, added = _sums_add_up(losses.orthogonality_sums, losses.orthogonality_from_sums, mu, y)
  assert added == pytest.approx(float(np.sum((mu.T @ y / b) ** 2)), rel=1e-5)
  whole, added = _sums_add_up(lambda p, l: losses.task_sums(p, l, "l1"), losses.ratio,
                              mu[:, 0], y[:, 0])
  assert added == pytest.approx(float(np.mean(np.abs(mu[:, 0] - y[:, 0]))), rel=1e-6)
  whole, added = _sums_add_up(losses.gaussian_kl_sums, losses.ratio, mu, lv)
  assert added == pytest.approx(float(losses.gaussian_kl(mu, lv)), rel=1e-6)
  # Masked reconstruction: unequal valid lengths, so the parts' means do not average.
  frames = rng.normal(size=(b, 5, 3)).astype(np.float32)
  length = np.array([5, 1, 2, 5, 3, 0, 4])
  pooled = lambda r, t, n: losses.pooled(losses.recon_frames_sums(r, t, n))
  whole, added = _sums_add_up(pooled, losses.ratio, frames, np.zeros_like(frames), length)
  assert added == pytest.approx(float(losses.recon_frames(frames, 0 * frames, length)), rel=1e-6)


@pytest.fixture(name="no_dropout", scope="module")
def _no_dropout():
  config = smoke_config()
  for key in ("latent_dropout", "fusion_dropout", "regressor_dropout"):
    setattr(config.model, key, 0.0)
  config.bert.hidden_dropout = config.bert.attention_dropout = 0.0
  config.club.steps = 1  # Less to compile; the params are smoke_start's.
  return config, factory.build(config)


def _with_accumulation(config, k):
  config = config.copy_and_resolve_references()
  config.optim.accumulate_steps = k
  return config


_COLLECTIVE = re.compile(r"= (\w+)\[([\d,]*)\]\S* (all-to-all|all-gather|collective-permute)")


def _inputs_moved(hlo: str, d) -> list[str]:
  """Collectives in a compiled program that carry input rows: audio or vision frames, or
  token ids (small latents and lengths may move; a batch's features must not)."""
  inputs = {("f32", (d.audio_len, d.audio_dim)), ("f32", (d.vision_len, d.vision_dim)),
            ("s32", (d.text_len,))}
  moved = []
  for dtype, dims, op in _COLLECTIVE.findall(hlo):
    shape = tuple(int(x) for x in dims.split(",") if x)
    if any(dtype == t and shape[-len(tail):] == tail for t, tail in inputs):
      moved.append(f"{op} {dtype}{list(shape)}")
  return moved


def test_accumulated_steps_on_two_devices_make_the_whole_batch_updates(no_dropout,
                                                                       smoke_start):
  """Three steps with k = 1 and k = 2 from one state on one batch (8 labelled + 8
  unlabelled rows) on 2 devices: every loss term,
  the gradient norm and the estimators' NLL before and after their updates agree at every
  step, and so do the params after the three updates (to a small fraction of one step's
  learning rate); the schedule and the counter advance once per update; and the
  microbatches split each device's rows in place."""
  config, model = no_dropout
  state, batch, unlabeled = smoke_start
  mesh = sharding.make_mesh(jax.devices()[:2])
  b, u = sharding.to_global(batch, mesh), sharding.to_global(unlabeled, mesh)
  history, end = {}, {}
  for k in (1, 2):
    fn = smoke.train_step_for(_with_accumulation(config, k), model, mesh)
    s = jax.device_put(state, sharding.replicated(mesh))
    fn = fn.lower(s, b, u).compile()
    if k == 2:
      moved = _inputs_moved(fn.as_text(), config.data)
      assert not moved, f"splitting into microbatches moves inputs between devices: {moved}"
    history[k] = []
    for _ in range(3):
      s, m = fn(s, b, u)
      history[k].append(jax.device_get(m))
    end[k] = jax.device_get(s)
    assert int(end[k].step) == 3
  for i, (m1, m2) in enumerate(zip(history[1], history[2])):
    assert set(m1) == set(m2) and "club_nll/start" in m1
    for name in m1:
      assert float(m2[name]) == pytest.approx(float(m1[name]), rel=1e-4, abs=2e-6), (i, name)
  assert history[2][2]["lr/main"] < history[2][0]["lr/main"]  # Decays per update.
  flat = lambda p: flax.traverse_util.flatten_dict(flax.core.unfreeze(p), sep="/")
  start, p1, p2 = flat(state.params), flat(end[1].params), flat(end[2].params)
  lr = max(config.optim.main_lr, config.optim.bert_lr, config.club.lr)
  gap = {p: float(np.max(np.abs(p2[p] - p1[p]))) for p in p1}
  moved = {p: float(np.max(np.abs(p1[p] - start[p]))) for p in p1}
  bad = {p: (g, moved[p]) for p, g in gap.items() if g > 0.01 * lr}
  assert not bad, f"params differ by more than 1% of a step (gap, movement): {bad}"
  assert sum(m > lr for m in moved.values()) > len(moved) // 2  # The updates were real.


def test_refreshed_latents_of_microbatches_are_the_whole_batch_latents(no_dropout, smoke_start):
  """club.refresh_latents recomputes the latents k microbatches at a time: the same rows,
  in the batch's order (the estimators' NLL metrics read them in that order)."""
  _, model = no_dropout
  state, batch, unlabeled = smoke_start
  batch, unlabeled = ({k: v for k, v in b.items() if k != "id"} for b in (batch, unlabeled))
  refresh = jax.jit(lambda p, b, u, k: accumulate.refreshed_latents(
      p, b, u, jax.random.key(3), model=model, k=k), static_argnums=3)
  whole, parts = (jax.device_get(refresh(state.params, batch, unlabeled, k)) for k in (1, 2))
  assert set(whole) == {"z_s", "z_l", "z_a", "z_v"}
  for name in whole:
    np.testing.assert_allclose(parts[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_batches_that_do_not_split_into_microbatches_per_device_are_refused():
  config = _with_accumulation(smoke_config(), 3)  # 8 labelled rows do not split 3 ways.
  with pytest.raises(config_check.ConfigError, match=r"data.batch_size=8 .*accumulate_steps \(3\)"):
    experiment.check_train_batches(config, sharding.make_mesh(jax.devices()[:1]))
  config = _with_accumulation(smoke_config(), 2)  # 8 rows in 2 microbatches over 8 devices.
  with pytest.raises(config_check.ConfigError, match=r"device count \(8\)"):
    experiment.check_train_batches(config, sharding.make_mesh(jax.devices()[:8]))
  experiment.check_train_batches(config, sharding.make_mesh(jax.devices()[:4]))
