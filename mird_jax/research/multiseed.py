"""`--mode=multiseed`: one config over seeds seed .. seed+num_seeds-1, one after another,
each a full run (train, select on validation, test once) in <workdir>/seed_<k> on one
dataset (built, or generated, once in the multi-seed workdir), then
summary.json and summary.md: mean and standard deviation over seeds of every metric on
test and validation, of the test loss terms and of the disentanglement check, one row per
seed, and the exact config; summary.md also gives each seed's training wall time and
steps/s (runs/timing.py).

Rerunning the same command skips the seeds that have results.json and resumes an
interrupted one exactly, wherever it was killed (train.train_and_evaluate); a different
config in a workdir that holds a trained seed is refused before anything runs. One
protocol at a time holds the workdir (workdir_lock.py). Every seed shares the process's
compiled step (the seed is a run-time value of the train state).
"""

import json
import pathlib

from absl import logging
import jax

from data_pipelines import tfds_builders
from mird_jax.research import summary as summary_lib
from mird_jax.runs import errors
from mird_jax.runs import outputs
from mird_jax.runs import robustness
from mird_jax.runs import timing
from mird_jax.runs import train


def seed_config(config, seed: int, workdir):
  """A locked copy of `config` with `seed`, its data paths resolved against the multi-seed
  `workdir`, so that every seed reads one built (or generated) dataset."""
  data_dir, manual_dir = tfds_builders.paths(config, workdir)
  out = config.copy_and_resolve_references()
  out.unlock()
  out.seed = seed
  out.data.data_dir, out.data.manual_dir = str(data_dir), str(manual_dir)
  out.train.restart = "auto"  # The protocol's workdir carried it out for every seed.
  out.lock()
  return out


def seeds(config) -> list[int]:
  return [config.seed + k for k in range(config.num_seeds)]


def run(config, workdir, mesh=None) -> dict:
  """Runs (or finishes) every seed, then writes and returns the summary."""
  workdir = pathlib.Path(workdir)
  with train.claimed(config, workdir, multiseed=True):
    results = {}
    for seed in seeds(config):
      sub = workdir / f"seed_{seed}"
      done = sub / "results.json"
      if done.is_file():
        logging.info("seed %d: finished earlier, reading %s", seed, done)
        results[seed] = json.loads(done.read_text())
        continue
      logging.info("seed %d: training in %s", seed, sub)
      results[seed] = train.train_and_evaluate(seed_config(config, seed, workdir), sub,
                                               mesh=mesh)
    return _summarise(config, workdir, results, mesh)


def _summarise(config, workdir: pathlib.Path, results: dict, mesh=None) -> dict:
  """summary.json and summary.md of the seeds' results (and, with robustness.enabled, of
  their robustness records, scored where missing)."""
  robust = None
  if config.robustness.enabled:
    robust = {seed: robustness.run_one(seed_config(config, seed, workdir),
                                       workdir / f"seed_{seed}", mesh)
              for seed in sorted(results)}
  summary = summary_lib.summarise(results, config.to_dict(), robust)
  if jax.process_index() == 0:
    outputs.atomic_write(workdir / "summary.json", outputs.dumps(summary))
    timings = {seed: timing.read(workdir / f"seed_{seed}") for seed in summary["seeds"]}
    outputs.atomic_write(workdir / "summary.md", summary_lib.markdown(summary, timings))
  return summary


def robustness_only(config, workdir, mesh=None) -> dict:
  """--mode=robustness on a finished protocol: every seed's robustness record (scored
  where missing), then the summary with them. Trains nothing: an unfinished seed stops it."""
  workdir = pathlib.Path(workdir)
  config = _enabled(config)
  with train.claimed(config, workdir, multiseed=True):
    results = {}
    for seed in seeds(config):
      done = workdir / f"seed_{seed}" / "results.json"
      if not done.is_file():
        raise errors.RunError(f"{done}: no such file; seed {seed} has not finished: run "
                              f"--mode=multiseed with --workdir={workdir} first")
      results[seed] = json.loads(done.read_text())
    return _summarise(config, workdir, results, mesh)


def _enabled(config):
  out = config.copy_and_resolve_references()
  out.unlock()
  out.robustness.enabled = True
  out.lock()
  return out
