"""What run.py calls: sets up the process, records the config, dispatches on the mode."""

import json
import pathlib

from absl import logging
import jax
import ml_collections

from data_pipelines import input_pipeline
from data_pipelines import tfds_builders
from mird_jax import describe
from mird_jax import parallel

MODES = ("train", "eval", "predict", "describe")


def run(config: ml_collections.ConfigDict, workdir: str | None, mode: str) -> None:
  if mode not in MODES:
    raise ValueError(f"unknown --mode={mode!r}; expected one of {', '.join(MODES)}")
  if mode == "describe":
    print(describe.describe(config))
    return
  if not workdir:
    raise ValueError(f"--mode={mode} needs --workdir")
  if config.train.distributed:
    jax.distributed.initialize()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  workdir_path = pathlib.Path(workdir)
  workdir_path.mkdir(parents=True, exist_ok=True)
  if mode == "train":
    if jax.process_index() == 0:
      write_config(config, workdir_path / "config.json")
    prepare_data(config, workdir_path)
    logging.warning("MIRD training is not implemented yet (issue 5): data prepared, config "
                    "recorded in %s, nothing trained.", workdir_path / "config.json")
  else:
    raise NotImplementedError(f"--mode={mode} needs trained checkpoints (issue 5)")


def prepare_data(config: ml_collections.ConfigDict, workdir: pathlib.Path):
  """Builds the configured dataset (generating the synthetic one) and checks batch sizes."""
  sources = tfds_builders.prepare(config, workdir)
  streams = input_pipeline.Streams(config, sources, parallel.make_mesh())
  sizes = ", ".join(f"{k} {len(v)}" for k, v in sources.items())
  logging.info("data %s ready: %s examples; %d train steps per epoch", config.data.name, sizes,
               streams.train.steps_per_epoch)
  return streams


def write_config(config: ml_collections.ConfigDict, path: pathlib.Path) -> None:
  """Writes the resolved config as JSON, atomically so a crash leaves no half file."""
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
  tmp.replace(path)
