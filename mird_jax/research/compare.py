"""`--mode=compare`: one markdown table from several multi-seed workdirs.

Rows are the workdirs (named by their folder), columns the headline metrics as mean ± std
over seeds; then, for every row against the reference row, the mean paired difference and
the two-sided p-value of a paired t-test over the seeds both rows ran (the same seed gives
the same data order and initial draw, so the runs pair). With 3 to 5 seeds the test has
little power: a p-value above 0.05 means "not shown", not "equal". Below them, each row's
training wall time and steps/s, read from its seeds' event files.
"""

import json
import pathlib

from mird_jax.research import paired as paired_lib
from mird_jax.research import summary as summary_lib
from mird_jax.runs import timing

HEADLINE = ("MAE", "Corr", "Non0_acc_2", "Non0_F1_score", "Mult_acc_7")
_DISENTANGLEMENT = (("MI(z_s,z_l)", ("knn_mi", "s_l")), ("MI(z_s,z_a)", ("knn_mi", "s_a")),
                    ("MI(z_s,z_v)", ("knn_mi", "s_v")),
                    ("R²(z_a→shared)", ("probe_r2", "z_a", "shared")),
                    ("R²(z_v→shared)", ("probe_r2", "z_v", "shared")),
                    ("R²(z_s→shared)", ("probe_r2", "z_s", "shared")))


class CompareError(ValueError):
  """A workdir that cannot be compared; the message names it."""


def load(workdir) -> dict:
  path = pathlib.Path(workdir) / "summary.json"
  if not path.is_file():
    raise CompareError(f"{path}: no such file; run --mode=multiseed with --workdir={workdir} "
                       "first")
  summary = json.loads(path.read_text())
  if summary.get("version") != summary_lib.SUMMARY_VERSION:
    raise CompareError(f"{path}: summary version {summary.get('version')!r}, expected "
                       f"{summary_lib.SUMMARY_VERSION}; rerun --mode=multiseed on it")
  return summary


def _cell(stat):
  return summary_lib.fmt(stat)


def table(workdirs: list[str], reference: str | None = None,
          metrics: tuple[str, ...] = HEADLINE) -> str:
  """The markdown comparison (see the module docstring). `reference` is a workdir of the
  list or its folder name; default the first."""
  if not workdirs:
    raise CompareError("--workdirs names no workdir")
  names = [pathlib.Path(w).name or str(w) for w in workdirs]
  summaries = [load(w) for w in workdirs]
  ref = 0 if reference is None else next(
      (i for i, (w, n) in enumerate(zip(workdirs, names)) if reference in (w, n)), None)
  if ref is None:
    raise CompareError(f"--reference={reference} is not one of --workdirs ({', '.join(names)})")
  for name, s in zip(names, summaries):
    missing = [m for m in metrics if m not in s["test"]]
    if missing:
      raise CompareError(f"{name}: no test metric {missing[0]!r}; it has {', '.join(s['test'])}")
  seeds = lambda s: ",".join(map(str, s["seeds"]))
  out = ["Test split, mean ± std over seeds.", "",
         summary_lib.markdown_table(["config", "seeds"] + list(metrics),
                [[n, seeds(s)] + [_cell(s["test"][m]) for m in metrics]
                 for n, s in zip(names, summaries)])]
  out += _paired_part(f"Paired difference to {names[ref]} (row − reference, mean over "
                      "common seeds; two-sided paired t-test).", names, summaries, ref,
                      [(m, ("test", m)) for m in metrics])
  dis = [(label, ("disentanglement",) + path) for label, path in _DISENTANGLEMENT + tuple(
      (f"var({z})", ("latent_variance", z)) for z in _keys(summaries, "disentanglement",
                                                           "latent_variance"))]
  out += _block("Disentanglement on the test split (k-NN MI in nats; held-out ridge-probe "
                "R²; var: a latent's summed per-dimension variance), mean ± std over seeds.",
                names, summaries, ref, dis)
  club = [(f"CLUB({k[3:].replace('_', '→')})", ("test_losses", k))
          for k in _keys(summaries, "test_losses") if k.startswith("mi/")]
  out += _block("CLUB upper bound of each pair on the test split (what MIRD's MI penalty "
                "minimises; under none and orthogonal the monitored estimators'), mean ± "
                "std over seeds.", names, summaries, ref, club)
  out += _robustness(names, summaries, ref)
  out += _probes(names, summaries)
  out += _timing(names, workdirs, summaries)
  return "\n".join(out) + "\n"


def _probes(names, summaries, metrics=("MAE", "Corr")) -> list[str]:
  """The ridge probes of each row's input features (train.report_probes), where any row
  has them: closed-form fits that no training seed changes."""
  inputs = _keys(summaries, "probes_test")
  if not inputs:
    return []
  columns = [(f"{i} {m}", ("probes_test", i, m)) for i in inputs for m in metrics]
  return ["", "Ridge probes of the input features on the test split (closed form, fitted "
          "on train, ridge weight chosen on valid; the same for every seed of a row).", "",
          summary_lib.markdown_table(["config"] + [label for label, _ in columns],
                                     [[n] + [_mean_cell(s, path) for _, path in columns]
                                      for n, s in zip(names, summaries)])]


def _timing(names, workdirs, summaries) -> list[str]:
  """Each row's training wall time and speed, read from its seeds' event files
  (runs/timing.py), where any row has them. Not paired: a run's time says what the machine
  was doing then (another job beside it, a resume), not only what its config costs."""
  per_row = [[timing.read(pathlib.Path(w) / f"seed_{seed}") for seed in s["seeds"]]
             for w, s in zip(workdirs, summaries)]
  if not any(t for row in per_row for t in row):
    return []
  cell = lambda row, key: _cell(summary_lib.mean_std(t.get(key) for t in row))
  return ["", "Training wall time per row (mean ± std over seeds; processes: the most any "
          f"seed took): {timing.MEASURES}.", "",
          summary_lib.markdown_table(["config", "train minutes", "steps/s", "processes"], [
              [n, cell(row, "train_minutes"), cell(row, "steps_per_s"),
               str(max((t.get("processes", 0) for t in row), default=0) or "n/a")]
              for n, row in zip(names, per_row)])]


def _mean_cell(summary, path) -> str:
  """Mean ± std over seeds of the per-seed value at `path`."""
  return _cell(summary_lib.mean_std(paired_lib.per_seed(summary, path).values()))


def _keys(summaries, *path) -> list[str]:
  """The keys of the dict at `path` in any seed's row of any summary, in first-seen order."""
  out = {}
  for s in summaries:
    for row in s["per_seed"]:
      node = paired_lib.at(row, path)
      out.update(dict.fromkeys(node if isinstance(node, dict) else ()))
  return list(out)


def _paired_table(names, summaries, ref: int, columns) -> str:
  """Each row's paired difference to the reference row, per (label, per-seed path)."""
  return summary_lib.markdown_table(["config"] + [label for label, _ in columns], [
      [n] + [paired_lib.text(paired_lib.paired(paired_lib.per_seed(s, path),
                                               paired_lib.per_seed(summaries[ref], path)))
             for _, path in columns]
      for i, (n, s) in enumerate(zip(names, summaries)) if i != ref])


def _block(title: str, names, summaries, ref: int, columns) -> list[str]:
  """A mean ± std table of (label, per-seed path) columns and its paired differences to
  the reference row; nothing where no summary has any of the columns."""
  columns = [(label, path) for label, path in columns
             if any(paired_lib.per_seed(s, path) for s in summaries)]
  if not columns:
    return []
  return ["", title, "",
          summary_lib.markdown_table(["config"] + [label for label, _ in columns],
                                     [[n] + [_mean_cell(s, path) for _, path in columns]
                                      for n, s in zip(names, summaries)])] + _paired_part(
      f"Paired difference to {names[ref]}.", names, summaries, ref, columns)


def _paired_part(title: str, names, summaries, ref: int, columns) -> list[str]:
  """The paired-difference table under its title; nothing for a table of one row."""
  if len(names) < 2:
    return []
  return ["", title, "", _paired_table(names, summaries, ref, columns)]


def _robustness(names, summaries, ref: int, metrics=("MAE", "Corr")) -> list[str]:
  """Per metric, each row's test value under each corrupted-input condition that every
  row scored (robustness.conditions), and the paired difference to the reference row."""
  if not all(s.get("robustness") for s in summaries):
    return []
  conditions = [c for c in summaries[0]["robustness_names"]
                if all(c in s["robustness"] for s in summaries)]
  out = []
  for m in metrics:
    out += _block(f"Test {m} under corrupted inputs (robustness.conditions), mean ± std "
                  "over seeds.", names, summaries, ref,
                  [(c, ("robustness", c, m)) for c in conditions])
  return out
