"""`--mode=compare`: one markdown table from several multi-seed workdirs.

Rows are the workdirs (named by their folder), columns the headline metrics as mean ± std
over seeds; then, for every row against the reference row, the mean paired difference and
the two-sided p-value of a paired t-test over the seeds both rows ran (the same seed gives
the same data order and initial draw, so the runs pair). With 3 to 5 seeds the test has
little power: a p-value above 0.05 means "not shown", not "equal".
"""

import json
import pathlib

from mird_jax.research import paired as paired_lib
from mird_jax.research import summary as summary_lib

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
                 for n, s in zip(names, summaries)]), "",
         f"Paired difference to {names[ref]} (row − reference, mean over common seeds; "
         "two-sided paired t-test).", "",
         summary_lib.markdown_table(["config"] + list(metrics),
                [[n] + [paired_lib.text(paired_lib.paired(paired_lib.per_seed(s, ("test", m)),
                                  paired_lib.per_seed(summaries[ref], ("test", m)))) for m in metrics]
                 for i, (n, s) in enumerate(zip(names, summaries)) if i != ref])]
  scales = list(dict.fromkeys(
      z for s in summaries for r in s["per_seed"]
      for z in r.get("disentanglement", {}).get("latent_variance", {})))
  dis = [(label, path) for label, path in _DISENTANGLEMENT + tuple(
      (f"var({z})", ("latent_variance", z)) for z in scales)
         if any(paired_lib.per_seed(s, ("disentanglement",) + path) for s in summaries)]
  if dis:
    agg = lambda s, path: summary_lib.mean_std(
        paired_lib.per_seed(s, ("disentanglement",) + path).values())
    out += ["", "Disentanglement on the test split (k-NN MI in nats; held-out ridge-probe R²; "
            "var: a latent's summed per-dimension variance), mean ± std over seeds.", "",
            summary_lib.markdown_table(["config"] + [label for label, _ in dis],
                   [[n] + [_cell(agg(s, path)) for _, path in dis]
                    for n, s in zip(names, summaries)]), "",
            f"Paired difference to {names[ref]}.", "",
            summary_lib.markdown_table(["config"] + [label for label, _ in dis],
                   [[n] + [paired_lib.text(paired_lib.paired(paired_lib.per_seed(s, ("disentanglement",) + path),
                                     paired_lib.per_seed(summaries[ref], ("disentanglement",) + path)))
                           for _, path in dis]
                    for i, (n, s) in enumerate(zip(names, summaries)) if i != ref])]
  out += _robustness(names, summaries, ref)
  return "\n".join(out) + "\n"


def _robustness(names, summaries, ref: int, metrics=("MAE", "Corr")) -> list[str]:
  """Per metric, each row's test value under each corrupted-input condition that every
  row scored (robustness.conditions), and the paired difference to the reference row."""
  if not all(s.get("robustness") for s in summaries):
    return []
  conditions = [c for c in summaries[0]["robustness_names"]
                if all(c in s["robustness"] for s in summaries)]
  out = []
  for m in metrics:
    at = lambda s, c: paired_lib.per_seed(s, ("robustness", c, m))
    out += ["", f"Test {m} under corrupted inputs (robustness.conditions), mean ± std over "
            "seeds.", "",
            summary_lib.markdown_table(["config"] + conditions, [
                [n] + [_cell(summary_lib.mean_std(at(s, c).values())) for c in conditions]
                for n, s in zip(names, summaries)]), "",
            f"Paired difference of test {m} to {names[ref]} under each condition.", "",
            summary_lib.markdown_table(["config"] + conditions, [
                [n] + [paired_lib.text(paired_lib.paired(at(s, c), at(summaries[ref], c)))
                       for c in conditions]
                for i, (n, s) in enumerate(zip(names, summaries)) if i != ref])]
  return out
