"""The robustness check: a trained run's selected checkpoint scored on the test split under
each configured corruption (`robustness.conditions`; mird_jax/evaluation/corruptions.py),
written to robustness.json and robustness.md beside its results (results.json is never
touched). `--mode=robustness` scores a finished run, or every seed of a finished
multi-seed workdir (then its summary gains the conditions: mird_jax/research/multiseed.py);
`robustness.enabled` does the same after `--mode=train` and after each seed of
`--mode=multiseed`.
"""

import json
import pathlib

from absl import logging
import jax

from mird_jax.evaluation import corruptions
from mird_jax.evaluation import metrics as metrics_lib
from mird_jax.runs import experiment
from mird_jax.runs import inference
from mird_jax.runs import outputs

FILE = "robustness.json"


def conditions(config) -> tuple[str, ...]:
  """"clean" first, then the configured conditions (each checked: corruptions.parse)."""
  listed = tuple(c for c in config.robustness.conditions if c != "clean")
  for c in listed:
    corruptions.parse(c)
  return ("clean",) + listed


def score(exp, params, names, seed: int) -> dict[str, dict[str, float]]:
  """{condition: the metric suite on the test split under it}."""
  std = corruptions.feature_std(exp.streams.eval("test"))
  out = {}
  for index, name in enumerate(names):
    batches = (corruptions.apply(b, name, index, seed, std) for b in exp.streams.eval("test"))
    preds, labels, _ = experiment.predict(exp, params, batches)
    out[name] = metrics_lib.all_metrics(preds, labels, dataset=exp.config.data.metric_dataset)
  return out


def read(workdir, config) -> dict | None:
  """The run's robustness record, if it holds one for these conditions and seed."""
  path = pathlib.Path(workdir) / FILE
  if not path.is_file():
    return None
  record = json.loads(path.read_text())
  if (tuple(record.get("names", ())) != conditions(config)
      or record.get("seed") != config.robustness.seed):
    return None
  return record


def run_one(config, workdir, mesh=None) -> dict:
  """Scores the finished run in `workdir` (its selected checkpoint), writes robustness.json
  and robustness.md there and returns the record; a record for the same conditions is
  read, not recomputed."""
  workdir = pathlib.Path(workdir)
  done = read(workdir, config)
  if done is not None:
    return done
  names = conditions(config)
  exp = experiment.build(config, workdir, mesh=mesh, training=False)
  params = inference.restore_params(exp, workdir)
  logging.info("robustness: scoring %s under %d conditions", workdir, len(names))
  # "names" keeps the conditions' order (the JSON file sorts its keys).
  record = {"split": "test", "seed": config.robustness.seed, "names": list(names),
            "conditions": score(exp, params, names, config.robustness.seed)}
  if jax.process_index() == 0:
    outputs.atomic_write(workdir / "robustness.md", markdown(record))
    outputs.atomic_write(workdir / FILE, outputs.dumps(record))
  return record


def markdown(record: dict, metrics=("MAE", "Corr", "Non0_acc_2", "Mult_acc_7")) -> str:
  """One run's table: each condition's test metrics."""
  lines = [f"# Robustness (test split, noise seed {record['seed']})", "",
           "| condition | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
  lines += ["| " + " | ".join([name] + [f"{m.get(k, float('nan')):.3f}" for k in metrics])
            + " |" for name, m in ((n, record["conditions"][n]) for n in record["names"])]
  return "\n".join(lines + [""])
