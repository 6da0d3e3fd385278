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
