"""What a sweep reports: a progress line per trial, and DIR/sweep.md with DIR/sweep.json
(the trials sorted by the metric, the best values beside the base config's, Optuna's
parameter importances and matplotlib plots as PNG, and the confirmation over seeds: the
only place a sweep shows test metrics)."""

import dataclasses
import math
import pathlib
import warnings

import matplotlib

matplotlib.use("Agg")  # Headless: the report is files.
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top
import optuna  # noqa: E402  pylint: disable=g-import-not-at-top

from mird_jax import config_check  # noqa: E402  pylint: disable=g-import-not-at-top
from mird_jax.research import compare  # noqa: E402  pylint: disable=g-import-not-at-top
from mird_jax.research import summary as summary_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from mird_jax.runs import outputs  # noqa: E402  pylint: disable=g-import-not-at-top

State = optuna.trial.TrialState
PLOTS = {"sweep_history.png": "plot_optimization_history",
         "sweep_importances.png": "plot_param_importances",
         "sweep_slice.png": "plot_slice",
         "sweep_epochs.png": "plot_intermediate_values"}


@dataclasses.dataclass(frozen=True)
class Confirmation:
  best: pathlib.Path  # Multi-seed workdirs (research/multiseed.py) of the two rows.
  base: pathlib.Path


def say(message: str) -> None:
  """A line on stdout (the run's absl log, on stderr, carries the trial's training)."""
  print(f"sweep: {message}", flush=True)


def _duration(t) -> float | None:
  if t.datetime_start and t.datetime_complete:
    return (t.datetime_complete - t.datetime_start).total_seconds()
  return None


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def _values(params: dict) -> str:
  return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in params.items())


def _outcome(t, metric: str) -> str:
  if t.state == State.COMPLETE:
    return f"valid {metric} {t.value:.4f}"
  if t.state == State.PRUNED:
    return f"pruned after epoch {t.last_step} (valid {metric} " \
           f"{t.intermediate_values.get(t.last_step, math.nan):.4f})"
  if t.state == State.FAIL:
    return f"failed ({t.user_attrs.get('failure', 'no reason recorded')[:120]})"
  return t.state.name.lower()


def progress(study, config, number: int, trial_s: float, elapsed_s: float,
             metric: str) -> None:
  """One line: the trial, its values and outcome, the best so far, elapsed and (from the
  mean trial time and the workers now running) remaining time."""
  trials = study.get_trials(deepcopy=False)
  t = next(t for t in trials if t.number == number)
  finished = [x for x in trials if x.state.is_finished()]
  durations = [d for d in map(_duration, finished) if d is not None]
  running = sum(x.state == State.RUNNING for x in trials)
  left = max(config.sweep.trials - len(finished), 0)
  eta = sum(durations) / len(durations) * left / (running + 1) if durations else math.nan
  complete = [x for x in trials if x.state == State.COMPLETE]
  best = (f"best {study.best_value:.4f} (trial {study.best_trial.number})" if complete
          else "no complete trial yet")
  say(f"trial {number} ({len(finished)} of {config.sweep.trials} ended): "
      f"{_values(t.params)} | {_outcome(t, metric)} in {_clock(trial_s)} | {best} | "
      f"{_clock(elapsed_s)} elapsed, ~{_clock(eta) if math.isfinite(eta) else '?'} left")


def _sorted(trials, direction) -> list:
  sign = 1.0 if direction == optuna.study.StudyDirection.MINIMIZE else -1.0
  order = {State.COMPLETE: 0, State.PRUNED: 1, State.FAIL: 2, State.RUNNING: 3,
           State.WAITING: 4}

  def key(t):
    value = t.value if t.state == State.COMPLETE else t.intermediate_values.get(t.last_step)
    value = math.inf if value is None or not math.isfinite(value) else sign * value
    return order[t.state], value, t.number
  return sorted(trials, key=key)


def _row(t) -> dict:
  return {"number": t.number, "state": t.state.name, "value": t.value,
          "params": t.params, "epochs_reported": len(t.intermediate_values),
          "last_epoch_value": t.intermediate_values.get(t.last_step) if t.last_step else None,
          "selected_epoch": t.user_attrs.get("selected_epoch"),
          "note": t.user_attrs.get("failure") or t.user_attrs.get("pruned") or "",
          "duration_s": _duration(t), "workdir": t.user_attrs.get("workdir")}


def _importances(study) -> tuple[dict | None, str]:
  complete = study.get_trials(deepcopy=False, states=(State.COMPLETE,))
  if len(complete) < 2:
    return None, f"needs at least 2 complete trials, has {len(complete)}"
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return dict(optuna.importance.get_param_importances(study)), ""
  except (ValueError, RuntimeError, ZeroDivisionError) as e:
    return None, f"{type(e).__name__}: {e}"


def _plots(study, workdir: pathlib.Path) -> dict[str, str]:
  """Optuna's matplotlib figures as PNG; {file: "" or why it was not drawn}."""
  out = {}
  for name, fn in PLOTS.items():
    if fn == "plot_intermediate_values" and not any(
        t.intermediate_values for t in study.get_trials(deepcopy=False)):
      continue
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental.
        axes = getattr(optuna.visualization.matplotlib, fn)(study)
      figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
      figure.savefig(workdir / name, dpi=100, bbox_inches="tight")
      plt.close(figure)
      out[name] = ""
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
      out[name] = f"not drawn: {type(e).__name__}: {e}"
      plt.close("all")
  return out


def _confirmation(c: Confirmation | None) -> dict | None:
  if c is None:
    return None
  rows = {}
  for path in (c.best, c.base):
    s = compare.load(path)
    rows[path.name] = {"seeds": s["seeds"], "test": s["test"], "valid": s["valid"],
                       "workdir": str(path)}
  return {"rows": rows, "reference": c.base.name,
          "table": compare.table([str(c.best), str(c.base)], reference=str(c.base))}


def write(study, config, workdir, params, metric: str, confirmation: Confirmation | None,
          running: tuple[int, ...] = ()) -> dict:
  """Writes sweep.json, sweep.md and the plots; returns sweep.json's content. While
  `running` trials still run in other workers, the plots are left to the last of them."""
  workdir = pathlib.Path(workdir)
  trials = _sorted(study.get_trials(), study.direction)
  complete = [t for t in trials if t.state == State.COMPLETE]
  importances, why = _importances(study)
  report = {
      "study": study.study_name, "metric": metric, "direction": study.direction.name.lower(),
      "trials_asked": config.sweep.trials, "sampler": config.sweep.sampler,
      "seed": config.sweep.seed, "pruner": config.sweep.pruner,
      "space": {p.key: str(p) for p in params},
      "counts": {s.name: sum(t.state == s for t in trials) for s in State},
      "trials": [_row(t) for t in trials],
      "best": ({"number": complete[0].number, "value": complete[0].value,
                "params": complete[0].params} if complete else None),
      "base": {p.key: config_check.get(config, p.key) for p in params},
      "importances": importances, "importances_note": why,
      "plots": ({name: f"not drawn yet: trials {list(running)} still run in other workers; "
                       "the last of them draws it" for name in PLOTS} if running else
                _plots(study, workdir)),
      "confirmation": _confirmation(confirmation),
  }
  outputs.atomic_write(workdir / "sweep.json", outputs.dumps(report))
  outputs.atomic_write(workdir / "sweep.md", markdown(report))
  return report


def _fmt(value, digits: int = 4) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "n/a"
  return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _trial_table(report: dict) -> str:
  keys = list(report["space"])
  rows = []
  for rank, r in enumerate(report["trials"], 1):
    value = r["value"] if r["state"] == "COMPLETE" else r["last_epoch_value"]
    rows.append([str(rank), str(r["number"]), r["state"].lower(), _fmt(value),
                 str(r["epochs_reported"]), _fmt(r["duration_s"], 3)]
                + [_fmt(r["params"].get(k)) for k in keys] + [r["note"][:80]])
  return summary_lib.markdown_table(
      ["rank", "trial", "state", report["metric"], "epochs", "seconds"] + keys + ["note"], rows)


def _confirmation_md(c: dict) -> list[str]:
  names = list(c["rows"])
  valid = [[n, ",".join(map(str, r["seeds"]))] +
           [summary_lib.fmt(r["valid"].get(m)) for m in compare.HEADLINE]
           for n, r in c["rows"].items()]
  return ["## Confirmation over seeds", "",
          f"{names[0]} (the best trial's values) and {names[1]} (the config as given), each "
          "a multi-seed run (--mode=multiseed) on seeds the search never trained on. The "
          "test split is scored here only, once per seed, on the epoch each run selected "
          "on validation.", "",
          "Validation, mean ± std over seeds.", "",
          summary_lib.markdown_table(["config", "seeds"] + list(compare.HEADLINE), valid), "",
          c["table"]]


def markdown(report: dict) -> str:
  counts = {s.name.lower(): report["counts"][s.name] for s in State
            if report["counts"].get(s.name)}
  ended = sum(v for k, v in counts.items() if k in ("complete", "pruned", "fail"))
  out = [f"# Sweep {report['study']}: {ended} of {report['trials_asked']} trials ended", "",
         f"Validation {report['metric']}, {report['direction']}d by Optuna's "
         f"{report['sampler']} sampler (seed {report['seed']}), pruner {report['pruner']}. "
         f"Trials: {', '.join(f'{v} {k}' for k, v in counts.items())}. The test split was "
         "not read by any trial.", ""]
  best = report["best"]
  if best:
    out += [f"## Best trial: {best['number']} (valid {report['metric']} "
            f"{_fmt(best['value'])})", "",
            summary_lib.markdown_table(["key", "space", "base config", "best"], [
                [k, f"`{s}`", _fmt(report["base"][k]), _fmt(best["params"][k])]
                for k, s in report["space"].items()]), ""]
  out += ["## Trials, best first", "", _trial_table(report), ""]
  if report["importances"]:
    out += ["## Parameter importances", "",
            "Optuna's default evaluator (PED-ANOVA) over the complete trials; the values sum "
            "to 1 and say how much of the spread of the metric each parameter explains.", "",
            summary_lib.markdown_table(["key", "importance"], [
                [k, f"{v:.3f}"] for k, v in report["importances"].items()]), ""]
  else:
    out += [f"Parameter importances: not computed ({report['importances_note']}).", ""]
  drawn = [name for name, why in report["plots"].items() if not why]
  out += ["## Plots", ""] + [f"![{name}]({name})" for name in drawn] + [
      f"- {name}: {why}" for name, why in report["plots"].items() if why] + [""]
  if report["confirmation"]:
    out += _confirmation_md(report["confirmation"])
  return "\n".join(out) + "\n"
