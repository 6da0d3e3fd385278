"""The input-pipeline benchmark (data_pipelines/tools/benchmark.py) on a tiny MOSEI-shaped
split: it builds the split in a child process, streams it, and reports what it measured."""

import re

from data_pipelines.tools import benchmark


def test_pipeline_benchmark_builds_streams_and_reports(tmp_path, capsys):
  benchmark.main(["--workdir", str(tmp_path), "--n_train", "160", "--batch_size", "8",
                  "--steps", "5", "--threads", "1"])
  out = capsys.readouterr().out
  # 160 x 500 x (74 + 35) float32 values: 0.035 GB.
  assert "train split: 160 examples, 0.03 GB of float32 frames" in out, out
  rate = re.search(r"pipeline: (\d+) examples/s \(([\d.]+) batches/s of 8, 1 read threads\)", out)
  assert rate and int(rate.group(1)) > 0, out
  assert re.search(r"peak RSS of the reading process: \d+ MB", out), out
