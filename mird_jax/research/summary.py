"""The multi-seed summary (summary.json, summary.md) of per-seed results: light (NumPy
only), so that --mode=compare runs without JAX."""

import json
import math

import numpy as np

from mird_jax.research import paired
from mird_jax.runs import timing

SUMMARY_VERSION = 1


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


def _robustness(robust: dict[int, dict] | None) -> dict:
  """{condition: {metric: mean_std}} over the seeds' robustness records (runs/robustness.py)."""
  if not robust:
    return {}
  records = [robust[s]["conditions"] for s in sorted(robust)]
  return {c: _aggregate([r.get(c, {}) for r in records]) for c in robustness_names(robust)}


def robustness_names(robust: dict[int, dict] | None) -> list[str]:
  """The conditions in their configured order (the JSON files sort their keys)."""
  return list(robust[min(robust)]["names"]) if robust else []


def summarise(results: dict[int, dict], config_dict: dict,
              robust: dict[int, dict] | None = None) -> dict:
  """The summary of {seed: results.json} (see the module docstring), with {seed:
  robustness.json} when the protocol scored its conditions."""
  ordered = [results[s] for s in sorted(results)]
  parts = {"test": "test", "valid": "valid", "test_losses": "test_losses",
           "disentanglement": "disentanglement", "probes_test": "probes_test"}
  return {
      "version": SUMMARY_VERSION,
      "seeds": sorted(results),
      "select_metric": ordered[0]["select_metric"],
      **{name: _aggregate([r.get(key, {}) for r in ordered]) for name, key in parts.items()},
      "robustness": _robustness(robust),
      "robustness_names": robustness_names(robust),
      "per_seed": [{"seed": s, "selected_epoch": r["selected_epoch"],
                    "epochs_run": r["epochs_run"], "test": r["test"], "valid": r["valid"],
                    "disentanglement": r.get("disentanglement", {}),
                    "test_losses": r.get("test_losses", {}),
                    "probes_test": r.get("probes_test", {}),
                    "robustness": (robust or {}).get(s, {}).get("conditions", {})}
                   for s, r in sorted(results.items())],
      "config": config_dict,
  }


def fmt(stat: dict, digits: int = 3) -> str:
  if stat is None or stat.get("mean") is None:
    return "n/a"
  if stat.get("std") is None:
    return f"{stat['mean']:.{digits}f}"
  return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  """A markdown table (every summary and comparison writes its tables with this)."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def robustness_markdown(summary: dict, metrics=("MAE", "Corr", "Non0_acc_2")) -> list[str]:
  """The corrupted-input section: each condition's test metrics over seeds, and its
  paired difference to clean (the same seed's run, clean input)."""
  conditions = summary.get("robustness") or {}
  if not conditions:
    return []
  clean = {m: paired.per_seed(summary, ("robustness", "clean", m)) for m in metrics}
  rows = [[c] + [fmt(v.get(m)) for m in metrics] +
          ([paired.text(paired.paired(paired.per_seed(summary, ("robustness", c, m)),
                                      clean[m])) for m in metrics[:2]] if c != "clean"
           else ["", ""]) for c, v in ((c, conditions[c]) for c in summary["robustness_names"])]
  return ["## Corrupted inputs (test split)", "",
          "Each condition's metrics (mean ± std over seeds) and its paired difference to "
          "the clean input (condition − clean; paired t-test over seeds):", "",
          markdown_table(["condition", *metrics] + [f"Δ{m}" for m in metrics[:2]], rows), ""]


def _timing_markdown(timings: dict[int, dict]) -> list[str]:
  """Each seed's training wall time and speed (runs/timing.py), where they were read."""
  rows = [(seed, t) for seed, t in sorted(timings.items()) if t]
  if not rows:
    return []
  cell = lambda v, digits: "n/a" if v is None else f"{v:.{digits}f}"
  return ["## Wall time (training)", "", f"Per seed: {timing.MEASURES}.", "",
          markdown_table(["seed", "minutes", "steps/s", "processes"], [
              [str(seed), cell(t.get("train_minutes"), 1), cell(t.get("steps_per_s"), 2),
               str(t["processes"])] for seed, t in rows]), ""]


def markdown(summary: dict, timings: dict[int, dict] | None = None) -> str:
  """summary.md: the tables a reader needs, then the exact config. `timings` ({seed:
  runs/timing.read}) stays out of summary.json, which a resumed protocol must reproduce
  exactly: a run's wall time is a fact of its history, not of its config and seed."""
  n = len(summary["seeds"])
  seeds_text = ", ".join(map(str, summary["seeds"]))
  out = [f"# Summary over {n} seeds ({seeds_text})", "",
         "Mean ± sample standard deviation (ddof 1) across seeds; the test split is scored "
         f"once per seed, on the epoch selected by validation {summary['select_metric']}.", ""]
  metrics = list(summary["test"])
  out += ["## Metrics", "", markdown_table(["metric", "test", "valid"], [
      [k, fmt(summary["test"][k]), fmt(summary["valid"].get(k))] for k in metrics]), ""]
  per_seed = [[str(r["seed"]), str(r["selected_epoch"])] +
              [f"{r['test'].get(k, float('nan')):.3f}" if r["test"].get(k) is not None
               else "n/a" for k in metrics] for r in summary["per_seed"]]
  out += ["## Per seed (test)", "", markdown_table(["seed", "epoch"] + metrics, per_seed), ""]
  out += _timing_markdown(timings or {})
  d = summary["disentanglement"]
  if d:
    out += ["## Disentanglement (test split)", "",
            "k-NN (KSG) MI, in nats, between z_s and each specific latent (MIRD: s_m) or "
            "the fused z_f and each unimodal latent (MIB: f_m):", "",
            markdown_table(["pair", "MI"], [[k.split(".")[-1], fmt(v)] for k, v in d.items()
                                    if k.startswith("knn_mi.")]), ""]
    spread = {k.split(".")[-1]: v for k, v in d.items() if k.startswith("latent_variance.")}
    norm = {k.split(".")[-1]: v for k, v in d.items() if k.startswith("latent_norm.")}
    if spread:
      out += ["Scale of each latent: summed per-dimension variance across examples, and "
              "mean norm (a CLUB bound or an orthogonality penalty also falls when a latent "
              "shrinks):", "",
              markdown_table(["latent", "variance", "mean norm"],
                             [[k, fmt(v), fmt(norm.get(k))] for k, v in spread.items()]), ""]
    probes = {tuple(k.split(".")[1:]): v for k, v in d.items() if k.startswith("probe_r2.")}
    if probes:
      latents = sorted({z for z, _ in probes})
      factors = list(dict.fromkeys(f for _, f in probes))
      out += ["Held-out R² of ridge probes from each latent to each true factor:", "",
              markdown_table(["latent"] + factors,
                     [[z] + [fmt(probes.get((z, f)), 2) for f in factors] for z in latents]),
              ""]
  out += robustness_markdown(summary)
  losses = summary["test_losses"]
  if losses:
    out += ["## Loss terms on the test split", "",
            markdown_table(["term", "value"], [[k, fmt(v, 4)] for k, v in losses.items()]), ""]
  out += ["## Config", "", "```json", json.dumps(summary["config"], indent=2, sort_keys=True),
          "```", ""]
  return "\n".join(out)
