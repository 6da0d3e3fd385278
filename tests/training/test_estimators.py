"""The estimators' parameter group: exactly the six CLUB networks' leaves, put back in place
(their fit through the train step is tested in test_step.py)."""

import flax
import numpy as np

from mird_jax.training import estimators


def test_club_leaves_are_the_six_estimators_and_go_back_where_they_came_from(smoke_exp,
                                                                              smoke_start):
  state, _, _ = smoke_start
  leaves = estimators.club_leaves(state.params, smoke_exp.config.optim.groups)
  assert {p.split("/")[0] for p in leaves} == {
      f"club_{x}_{y}" for x, y in (("l", "a"), ("l", "v"), ("a", "v"), ("s", "l"),
                                   ("s", "a"), ("s", "v"))}
  back = estimators.with_leaves(state.params, {p: v + 1.0 for p, v in leaves.items()})
  before = flax.traverse_util.flatten_dict(flax.core.unfreeze(state.params), sep="/")
  after = flax.traverse_util.flatten_dict(back, sep="/")
  assert after.keys() == before.keys()
  for path, value in before.items():
    np.testing.assert_array_equal(after[path], value + 1.0 if path in leaves else value)


def test_refreshed_fits_draw_fresh_dropout_for_each_update(smoke_exp, smoke_start):
  """club.refresh_latents (the public order): update i fits the latents of a new forward
  with its own dropout key, so the fit depends on every key; the step's keys are distinct
  from each other and from the main forward's. (The parity test pins that the forwards use
  the post-update params, and that without refreshing the step is not the public one.)"""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from mird_jax.training import accumulate  # pylint: disable=g-import-not-at-top
  from mird_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top
  state, batch, unlabeled = smoke_start
  batch, unlabeled = ({k: v for k, v in b.items() if k != "id"} for b in (batch, unlabeled))
  model, rules = smoke_exp.model, smoke_exp.config.optim.groups
  cfg = dataclasses.replace(smoke_exp.step_config, refresh_latents=True, club_steps=2)
  key = jax.random.key(7)
  keys = step_lib.refresh_keys(key, 2)
  data = jax.random.key_data
  distinct = {tuple(np.asarray(data(k)).ravel()) for k in [*keys, jax.random.fold_in(key, 0)]}
  assert len(distinct) == 3
  # With refreshing, the step's own latents only feed the NLL metrics: zeros will do.
  shapes = jax.eval_shape(lambda: accumulate.refreshed_latents(
      state.params, batch, unlabeled, key, model=model, k=1))
  z = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  fit = jax.jit(lambda keys: estimators.club_leaves(estimators.fit(
      state.params, state.opt_club, z, batch, unlabeled, keys, model=model,
      tx_club=smoke_exp.tx_club, rules=rules, cfg=cfg)[0], rules))
  fresh, same_key = fit(keys), fit(jax.numpy.stack([keys[0], keys[0]]))
  # The second update saw its own draw: the two fits part.
  assert max(float(np.abs(fresh[p] - same_key[p]).max()) for p in fresh) > 1e-6
