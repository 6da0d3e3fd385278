r"""Input-pipeline benchmark on MOSEI-sized synthetic data: examples/s and peak memory.

  python -m data_pipelines.tools.benchmark --workdir /tmp/pipeline_bench [--n_train 16000]

Builds (once, in a child process, streaming in chunks) a synthetic train split with MOSEI's
unaligned shapes (audio 500x74, vision 500x35, text 50) as array_record, then times the
training stream alone (grain shuffle, decode, batch, prefetch threads) and prints examples/s
and the reading process's peak resident memory, which must stay far below the split's size.
"""

import argparse
import dataclasses
import importlib
import json
import multiprocessing
import pathlib
import resource
import time

import grain
import tensorflow_datasets as tfds

from data_pipelines import example
from data_pipelines import input_pipeline
from data_pipelines import readers
from data_pipelines import synthetic
from data_pipelines import tfds_builders

_CHUNK = 256  # Examples generated at a time while building.


# pylint: disable-next=protected-access
class SyntheticStreamed(tfds_builders._MirdBuilder, skip_registration=True):
  """Synthetic train split generated chunk by chunk: building never holds the whole split."""
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Nothing to download: generated."

  def _shard_iterators_per_split(self, dl_manager):
    del dl_manager
    return {"train": [self._generate_chunks]}

  def _generate_chunks(self):
    cfg = self.builder_config
    spec = synthetic.SyntheticSpec(**json.loads(cfg.synthetic_json))
    world = synthetic._World(spec)  # pylint: disable=protected-access
    for start in range(0, spec.n_train, _CHUNK):
      n = min(_CHUNK, spec.n_train - start)
      raw, label, _ = synthetic.generate_split(spec, world, n, 100 + start, f"c{start}_")
      raw["regression_labels"] = label
      split, _ = readers.canonical_split(raw, "synthetic", "train", readers.ReadSpec(), None,
                                         True, "mmsa")
      for i in range(n):
        yield start + i, {k: split[k][i] for k in example.KEYS}


def _builder(args) -> SyntheticStreamed:
  spec = synthetic.SyntheticSpec(n_train=args.n_train, n_valid=0, n_test=0, n_unlabeled=0,
                                 text_len=50, audio_len=500, audio_dim=74, vision_len=500,
                                 vision_dim=35)
  cfg = tfds_builders.MirdBuilderConfig(
      name=f"mosei_sized_{args.n_train}", text_len=50, audio_len=500, audio_dim=74,
      vision_len=500, vision_dim=35, synthetic_json=json.dumps(dataclasses.asdict(spec)))
  return SyntheticStreamed(config=cfg, data_dir=str(pathlib.Path(args.workdir) / "tfds"),
                           file_format="array_record")


def _build(args) -> None:
  _builder(args).download_and_prepare()


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--n_train", type=int, default=16000)
  parser.add_argument("--batch_size", type=int, default=48)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--threads", type=int, default=8)
  args = parser.parse_args(argv)
  # TFDS needs the builder's module inside a package: use the imported module, not __main__.
  mod = importlib.import_module("data_pipelines.tools.benchmark")
  t0 = time.perf_counter()
  child = multiprocessing.get_context("spawn").Process(target=mod._build, args=(args,))
  child.start()
  child.join()
  if child.exitcode:
    raise SystemExit(f"benchmark: building the dataset failed (exit {child.exitcode})")
  print(f"dataset ready in {time.perf_counter() - t0:.1f} s")
  tfds.disable_progress_bar()
  source = mod._builder(args).as_data_source(split="train")
  split_gb = len(source) * (500 * 74 + 500 * 35) * 4 / 1e9
  rss_before = _peak_rss_mb()
  stream = input_pipeline.TrainStream(
      source, args.batch_size, seed=0,
      read_options=grain.ReadOptions(num_threads=args.threads, prefetch_buffer_size=args.threads))
  it = stream.iterator(0)
  for _ in range(10):  # Warm-up: thread start, first reads.
    next(it)
  steps = min(args.steps, stream.steps_per_epoch - 10)
  t1 = time.perf_counter()
  for _ in range(steps):
    next(it)
  dt = time.perf_counter() - t1
  print(f"train split: {len(source)} examples, {split_gb:.2f} GB of float32 frames")
  print(f"pipeline: {steps * args.batch_size / dt:.0f} examples/s ({steps / dt:.1f} batches/s "
        f"of {args.batch_size}, {args.threads} read threads)")
  print(f"peak RSS of the reading process: {_peak_rss_mb():.0f} MB "
        f"({rss_before:.0f} MB before reading)")


if __name__ == "__main__":
  main()
