"""What run.py calls: sets up the process and dispatches on the mode.

MODES is the one table of modes: what each needs (a config, a workdir) and the function
that runs it. `check` is the only place that checks a mode's input and validates the
config. Importing this module is cheap (no JAX, no TFDS): run.py reads MODES from it while
parsing flags, and each mode's function imports the heavy stack it needs, after `check`.
"""

import dataclasses
import json
import os
import pathlib
import sys
from typing import Callable

from absl import logging

from data_pipelines import readers
from mird_jax import config_check
from mird_jax.runs import workdir as workdir_lib


class UsageError(ValueError):
  """A mode called without what it needs (a flag, a workdir, a split): said in one line."""


@dataclasses.dataclass(frozen=True)
class Mode:
  needs_config: bool
  needs_workdir: bool
  run: Callable[..., None]  # (config, workdir, options) -> None; prints what it reports.


class _QuietLibraries:
  """Drops INFO records of Orbax (it logs several lines per save and restore), and the
  tracebacks of its background threads' errors: the failure they report reaches the run
  as an exception, which it reports in one line (checkpoint.CheckpointError)."""

  def filter(self, record) -> bool:
    if "/orbax/" not in record.pathname:
      return True
    record.exc_info, record.exc_text = None, None
    return record.levelno >= 30


def _drop_closed_loop_callbacks() -> None:
  """After an Orbax read or write fails (a damaged checkpoint, a full disk), TensorStore
  still completes the operation's other parts and calls back into the asyncio loop Orbax
  has closed; each callback's RuntimeError would print a traceback after the run's one
  line. Only that error is dropped; every other unraisable exception is printed."""
  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop_callbacks", False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"):
      previous(unraisable)
  hook.drops_closed_loop_callbacks = True
  sys.unraisablehook = hook


def _check_workdir_path(workdir: str) -> None:
  """A workdir that is, or lies under, an existing file cannot be made: say so now."""
  path = pathlib.Path(workdir)
  for p in (path, *path.parents):
    if p.exists():
      if not p.is_dir():
        where = "is an existing file" if p == path else f"lies under {p}, which is a file"
        raise UsageError(f"--workdir={workdir} {where}; name a directory")
      return


def check(mode: str, config, workdir: str | None, options: dict) -> None:
  """Everything a mode needs, checked before any work, each failure one line: the only
  place the config is validated."""
  if mode not in MODES:
    raise UsageError(f"unknown --mode={mode!r}; expected one of {', '.join(MODES)}")
  needs = MODES[mode]
  if not needs.needs_config:
    if not options.get("workdirs"):
      raise UsageError(f"--mode={mode} needs --workdirs=DIR1,DIR2,...")
    return
  if config is None:
    raise UsageError(f"--mode={mode} needs --config")
  if needs.needs_workdir and not workdir:
    raise UsageError(f"--mode={mode} needs --workdir")
  if workdir:
    _check_workdir_path(workdir)
  config_check.validate(config)
  if mode in ("eval", "eval_public"):
    splits = readers.SPLITS + (("unlabeled",) if config.data.unlabeled_file else ())
    if options.get("split", "test") not in splits:
      raise config_check.ConfigError(f"--split={options['split']!r} is not a split of this "
                                     f"dataset; expected one of {', '.join(splits)}")
  if mode == "predict" and not options.get("input_path"):
    raise UsageError("--mode=predict needs --input FILE")
  if mode == "eval_public":
    path = options.get("input_path")
    if not path or not pathlib.Path(path).is_file():
      raise UsageError("--mode=eval_public needs --input STATE.npz, the authors' model's "
                       "state_dict as numpy arrays (docs/differences.md); "
                       f"{'none given' if not path else repr(path) + ' is not a file'}")
  if mode == "sweep":
    _check_sweep(config)
  if mode in ("eval", "predict"):  # Nothing to restore: say so before anything is built.
    workdir_lib.require_trained(workdir, options.get("step"), mode)
  if mode == "robustness" and not workdir_lib.is_protocol(workdir):
    workdir_lib.require_trained(workdir, None, mode)


def _check_sweep(config) -> None:
  """The search space against the config, and what the sweep optimises (one line each)."""
  from mird_jax.research import space  # pylint: disable=g-import-not-at-top  # Light.
  if config.train.distributed:
    raise config_check.ConfigError(
        "train.distributed=True: a sweep's workers are independent processes; start the "
        "sweep command once per machine (docs/sweeps.md) instead of one multi-host job")
  space.parse(config)
  space.objective(config)
  if config.sweep.storage:
    space.check_storage(config.sweep.storage)


def run(config, workdir: str | None, mode: str, **options) -> None:
  """Runs `mode` (MODES) on `config` and `workdir`. Options, each for the modes that
  run.py's flags name: split, step, input_path, devices, as_json, workdirs, reference,
  metrics."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
  _drop_closed_loop_callbacks()
  check(mode, config, workdir, options)
  if mode == "benchmark" and options.get("devices"):
    # Fakes that many CPU devices (a GPU or TPU backend ignores it); only effective before
    # JAX first starts a backend, which in this process is in the mode's function.
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        "--xla_force_host_platform_device_count="
                                        f"{max(options['devices'])}"])
  if MODES[mode].needs_workdir:
    _start_jax(config)
  MODES[mode].run(config, pathlib.Path(workdir) if workdir else None, options)


def _start_jax(config) -> None:
  """Joins the other processes of a multi-host run, then logs the devices."""
  # pylint: disable=g-import-not-at-top  # The heavy stack, only once the input is checked.
  import jax
  from mird_jax.training import sharding
  if config.train.distributed:
    if "cpu" in os.environ.get("JAX_PLATFORMS", ""):  # Before any backend exists.
      os.environ["XLA_FLAGS"] = " ".join(
          [os.environ.get("XLA_FLAGS", ""), sharding.CPU_MULTIPROCESS_XLA_FLAGS]).strip()
    jax.distributed.initialize()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())


# pylint: disable=g-import-not-at-top  # Each mode imports what it needs when it runs.
def _train(config, workdir, options) -> None:
  del options
  from mird_jax.runs import outputs
  from mird_jax.runs import train
  results = train.train_and_evaluate(config, workdir)
  print(outputs.dumps({k: results[k] for k in ("selected_epoch", "test")}), end="")
  if config.robustness.enabled:
    from mird_jax.runs import robustness
    robustness.run_one(config, workdir)
    print(f"wrote {workdir / 'robustness.md'}")
  if "probes_test" in results:
    print(probe_comparison(results))


def _eval(config, workdir, options) -> None:
  from mird_jax.runs import inference
  from mird_jax.runs import outputs
  split, step = options.get("split", "test"), options.get("step")
  result = inference.evaluate_split(config, workdir, split, step)
  print(outputs.dumps({"split": split, "step": step or "best", "metrics": result}), end="")


def _eval_public(config, workdir, options) -> None:
  from mird_jax.runs import inference
  from mird_jax.runs import outputs
  split = options.get("split", "test")
  result = inference.evaluate_public(config, workdir, options["input_path"], split)
  print(outputs.dumps({"split": split, "weights": options["input_path"], "metrics": result}),
        end="")


def _predict(config, workdir, options) -> None:
  from mird_jax.runs import inference
  print(inference.predict_file(config, workdir, options["input_path"], options.get("step")))


def _multiseed(config, workdir, options) -> None:
  del options
  from mird_jax.research import multiseed
  summary = multiseed.run(config, workdir)
  print(f"wrote {workdir / 'summary.md'} ({len(summary['seeds'])} seeds)")


def _robustness(config, workdir, options) -> None:
  """A finished run, or every seed of a finished multi-seed workdir, scored under each
  corrupted-input condition (mird_jax/runs/robustness.py)."""
  del options
  from mird_jax.research import multiseed
  from mird_jax.runs import robustness
  from mird_jax.runs import workdir_lock
  if workdir_lib.is_protocol(workdir):
    multiseed.robustness_only(config, workdir)
    print(f"wrote {workdir / 'summary.md'} (with the robustness conditions)")
    return
  with workdir_lock.hold(workdir):
    from mird_jax.runs import outputs
    outputs.record_config(config, workdir, holds_progress=True)  # Its config, or refused.
    print(robustness.markdown(robustness.run_one(config, workdir)), end="")


def _sweep(config, workdir, options) -> None:
  del options
  from mird_jax.research import sweep
  report = sweep.run(config, workdir)
  print(f"wrote {workdir / 'sweep.md'} ({sum(report['counts'].values())} trials, "
        f"best {report['best']['number'] if report['best'] else 'none'})")


def _describe(config, workdir, options) -> None:
  del workdir, options
  from mird_jax.tools import describe
  print(describe.describe(config))


def _benchmark(config, workdir, options) -> None:
  del workdir
  from mird_jax.tools import benchmark
  devices = options.get("devices")
  records = benchmark.sweep(config, devices) if devices else [benchmark.measure(config)]
  print(json.dumps(records, indent=2) if options.get("as_json") else
        "\n".join(benchmark.text(r) for r in records))


def _benchmark_epoch(config, workdir, options) -> None:
  from mird_jax.tools import epoch_benchmark
  records = epoch_benchmark.run(config, workdir)
  print(json.dumps(records, indent=2) if options.get("as_json") else
        epoch_benchmark.text(records))


def _profile(config, workdir, options) -> None:
  del workdir, options
  from mird_jax.tools import profile
  print(profile.report(config))


def _compare(config, workdir, options) -> None:
  """The markdown table of several multi-seed workdirs (no config)."""
  del config, workdir
  from mird_jax.research import compare
  metrics = options.get("metrics")
  try:
    print(compare.table(options["workdirs"], options.get("reference"),
                        tuple(metrics) if metrics else compare.HEADLINE), end="")
  except ValueError as e:  # A workdir without a summary, a damaged or older one.
    raise UsageError(str(e)) from None
# pylint: enable=g-import-not-at-top


MODES = {
    "train": Mode(needs_config=True, needs_workdir=True, run=_train),
    "eval": Mode(needs_config=True, needs_workdir=True, run=_eval),
    # The authors' weights (an .npz of their state_dict) scored; the workdir holds the data.
    "eval_public": Mode(needs_config=True, needs_workdir=True, run=_eval_public),
    "predict": Mode(needs_config=True, needs_workdir=True, run=_predict),
    "describe": Mode(needs_config=True, needs_workdir=False, run=_describe),
    "benchmark": Mode(needs_config=True, needs_workdir=False, run=_benchmark),
    "profile": Mode(needs_config=True, needs_workdir=False, run=_profile),
    # One real epoch padded, cut to length buckets, and cut and grouped (epoch_benchmark.py).
    "benchmark_epoch": Mode(needs_config=True, needs_workdir=True, run=_benchmark_epoch),
    "multiseed": Mode(needs_config=True, needs_workdir=True, run=_multiseed),
    # A finished run (or multi-seed workdir) scored on the test split under corrupted inputs.
    "robustness": Mode(needs_config=True, needs_workdir=True, run=_robustness),
    # An Optuna search over config.sweep.space, each trial a run in <workdir>/trial_<n>/.
    "sweep": Mode(needs_config=True, needs_workdir=True, run=_sweep),
    "compare": Mode(needs_config=False, needs_workdir=False, run=_compare),
}


def probe_comparison(results: dict) -> str:
  """The model's test Corr/MAE beside the ridge probes' (one modality each, and all three)."""
  lines = ["test Corr / MAE: model {:.3f} / {:.3f}".format(results["test"]["Corr"],
                                                          results["test"]["MAE"])]
  for name, m in results["probes_test"].items():
    lines.append(f"  ridge probe, {name}: {m['Corr']:.3f} / {m['MAE']:.3f}")
  return "\n".join(lines)
