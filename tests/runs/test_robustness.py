"""The robustness check's scoring: the clean condition is exactly the run's test
evaluation (the same program on the same batches), a corrupted one moves the predictions,
and the record lists the conditions in their configured order."""

import jax
import pytest

from mird_jax.runs import experiment
from mird_jax.runs import robustness
from smoke import smoke_config


def test_clean_is_the_test_evaluation_and_corruptions_move_it(smoke_exp, smoke_start):
  state, _, _ = smoke_start
  params = jax.device_put(state.params, smoke_exp.replicated)
  table = robustness.score(smoke_exp, params, ("clean", "remove:vision", "drop:0.5"), 0)
  assert table["clean"] == experiment.evaluate(smoke_exp, params, "test")[0]
  for name in ("remove:vision", "drop:0.5"):
    assert table[name]["MAE"] != table["clean"]["MAE"], name
  record = {"seed": 0, "names": ["clean", "remove:vision", "drop:0.5"], "conditions": table}
  lines = robustness.markdown(record).splitlines()
  assert [line.split(" | ")[0] for line in lines[4:]] == [
      "| clean", "| remove:vision", "| drop:0.5"]


def test_conditions_come_clean_first_and_are_checked():
  config = smoke_config()
  config.robustness.conditions = ("noise:1.0", "clean", "remove:text")
  assert robustness.conditions(config) == ("clean", "noise:1.0", "remove:text")
  config.robustness.conditions = ("noise:loud",)
  with pytest.raises(ValueError, match="robustness condition 'noise:loud'"):
    robustness.conditions(config)
