"""`--mode=multiseed`: one config over seeds seed .. seed+num_seeds-1, one after another,
each a full run (train, select on validation, test once) in <workdir>/seed_<k> on one
dataset (built, or generated, once in the multi-seed workdir), then
summary.json and summary.md: mean and standard deviation over seeds of every metric on
test and validation, of the test loss terms and of the disentanglement check, one row per
seed, and the exact config.

Rerunning the same command skips the seeds that have results.json and resumes an
interrupted one exactly (train.train_and_evaluate); a different config in the same
workdir is refused before anything runs. Every seed shares the process's compiled step
(the seed is a run-time value of the train state).
"""

import json
import math
import pathlib

from absl import logging
import jax
import numpy as np

from data_pipelines import tfds_builders
from mird_jax import reporting
from mird_jax import train

SUMMARY_VERSION = 1


def seed_config(config, seed: int, workdir):
  """A locked copy of `config` with `seed`, its data paths resolved against the multi-seed
  `workdir`, so that every seed reads one built (or generated) dataset."""
  data_dir, manual_dir = tfds_builders.paths(config, workdir)
  out = config.copy_and_resolve_references()
  out.unlock()
  out.seed = seed
  out.data.data_dir, out.data.manual_dir = str(data_dir), str(manual_dir)
  out.lock()
  return out


def seeds(config) -> list[int]:
  return [config.seed + k for k in range(config.num_seeds)]


def run(config, workdir, mesh=None) -> dict:
  """Runs (or finishes) every seed, then writes and returns the summary."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    reporting.record_config(config, workdir)  # Refuses another config's workdir.
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
  summary = summarise(results, config.to_dict())
  if jax.process_index() == 0:
    reporting.atomic_write(workdir / "summary.json", reporting.dumps(summary))
    reporting.atomic_write(workdir / "summary.md", markdown(summary))
  return summary


def mean_std(values) -> dict:
  """Mean and sample standard deviation (ddof 1; None for fewer than 2 finite values)."""
  v = np.array([x for x in values if x is not None and math.isfinite(x)], np.float64)
  return {"mean": float(v.mean()) if v.size else None,
          "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def _flatten(tree, prefix=""):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _flatten(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}", v


def _aggregate(per_seed: list[dict]) -> dict:
  keys = list(dict.fromkeys(k for r in per_seed for k, _ in _flatten(r)))
  flat = [dict(_flatten(r)) for r in per_seed]
  return {k: mean_std([f.get(k) for f in flat]) for k in keys}


def summarise(results: dict[int, dict], config_dict: dict) -> dict:
  """The summary of {seed: results.json} (see the module docstring)."""
  ordered = [results[s] for s in sorted(results)]
  parts = {"test": "test", "valid": "valid", "test_losses": "test_losses",
           "disentanglement": "disentanglement"}
  return {
      "version": SUMMARY_VERSION,
      "seeds": sorted(results),
      "select_metric": ordered[0]["select_metric"],
      **{name: _aggregate([r.get(key, {}) for r in ordered]) for name, key in parts.items()},
      "per_seed": [{"seed": s, "selected_epoch": r["selected_epoch"],
                    "epochs_run": r["epochs_run"], "test": r["test"], "valid": r["valid"],
                    "disentanglement": r.get("disentanglement", {})}
                   for s, r in sorted(results.items())],
      "config": config_dict,
  }


def fmt(stat: dict, digits: int = 3) -> str:
  if stat is None or stat.get("mean") is None:
    return "n/a"
  if stat.get("std") is None:
    return f"{stat['mean']:.{digits}f}"
  return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(summary: dict) -> str:
  """summary.md: the tables a reader needs, then the exact config."""
  n = len(summary["seeds"])
  seeds_text = ", ".join(map(str, summary["seeds"]))
  out = [f"# Summary over {n} seeds ({seeds_text})", "",
         "Mean ± sample standard deviation (ddof 1) across seeds; the test split is scored "
         f"once per seed, on the epoch selected by validation {summary['select_metric']}.", ""]
  metrics = list(summary["test"])
  out += ["## Metrics", "", _table(["metric", "test", "valid"], [
      [k, fmt(summary["test"][k]), fmt(summary["valid"].get(k))] for k in metrics]), ""]
  per_seed = [[str(r["seed"]), str(r["selected_epoch"])] +
              [f"{r['test'].get(k, float('nan')):.3f}" if r["test"].get(k) is not None
               else "n/a" for k in metrics] for r in summary["per_seed"]]
  out += ["## Per seed (test)", "", _table(["seed", "epoch"] + metrics, per_seed), ""]
  d = summary["disentanglement"]
  if d:
    out += ["## Disentanglement (test split)", "",
            "k-NN (KSG) MI between z_s and each specific latent, in nats:", "",
            _table(["pair", "MI"], [[k.split(".")[-1], fmt(v)] for k, v in d.items()
                                    if k.startswith("knn_mi.")]), ""]
    spread = {k.split(".")[-1]: v for k, v in d.items() if k.startswith("latent_variance.")}
    if spread:
      out += ["Spread of each latent (summed per-dimension variance across examples):", "",
              _table(["latent", "variance"], [[k, fmt(v)] for k, v in spread.items()]), ""]
    probes = {tuple(k.split(".")[1:]): v for k, v in d.items() if k.startswith("probe_r2.")}
    if probes:
      latents = sorted({z for z, _ in probes})
      factors = list(dict.fromkeys(f for _, f in probes))
      out += ["Held-out R² of ridge probes from each latent to each true factor:", "",
              _table(["latent"] + factors,
                     [[z] + [fmt(probes.get((z, f)), 2) for f in factors] for z in latents]),
              ""]
  losses = summary["test_losses"]
  if losses:
    out += ["## Loss terms on the test split", "",
            _table(["term", "value"], [[k, fmt(v, 4)] for k, v in losses.items()]), ""]
  out += ["## Config", "", "```json", json.dumps(summary["config"], indent=2, sort_keys=True),
          "```", ""]
  return "\n".join(out)
