"""--mode=benchmark_epoch's three ways and its report (the timed run itself is a benchmark,
run by hand: docs/performance.md)."""

import pytest

from mird_jax import config_check
from mird_jax.tools import epoch_benchmark
from smoke import smoke_config


def test_the_three_ways_differ_in_buckets_and_grouping_only():
  config = smoke_config()
  config.data.text_buckets = (8,)
  ways = {w: epoch_benchmark.variant(config, w) for w in epoch_benchmark.WAYS}
  assert ways["untrimmed"].data.text_buckets == () and not ways["untrimmed"].data.group_by_length
  assert ways["trimmed"].data.text_buckets == (8,) and not ways["trimmed"].data.group_by_length
  assert ways["grouped"].data.text_buckets == (8,) and ways["grouped"].data.group_by_length
  assert config.data.text_buckets == (8,)  # The given config is left alone.
  for c in ways.values():
    c.data.text_buckets, c.data.group_by_length = (8,), False
    assert c.to_dict() == config.to_dict()
  with pytest.raises(config_check.ConfigError, match="set data.text_buckets"):
    epoch_benchmark.run(smoke_config(), "/nonexistent")


def test_the_report_divides_by_the_untrimmed_epoch():
  share = {"text": 0.5, "audio": 1.0, "vision": 1.0}
  record = lambda walls: {"model": "mird", "steps": 45, "batch": 32, "epoch_s": walls,
                          "compile_s": [4.0, 0.0], "steady_steps_per_s": [1.0, 2.0],
                          "padded_share": [share, share], "programs": 2,
                          "shapes": [[8, 1, 1], [50, 1, 1]]}
  text = epoch_benchmark.text({"untrimmed": record([30.0, 20.0]),
                               "grouped": record([15.0, 8.0])})
  assert "grouped epoch 1: 15.0 s (2.00x the untrimmed epoch)" in text
  assert "grouped epoch 2: 8.0 s (2.50x the untrimmed epoch)" in text
  assert "text 0.50, audio 1.00" in text and "2 program(s): [[8, 1, 1], [50, 1, 1]]" in text
