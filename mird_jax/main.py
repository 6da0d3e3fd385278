"""What run.py calls: sets up the process and dispatches on the mode.

Importing this module is cheap (no JAX, no TFDS): run.py reads MODES from it while parsing
flags, and the heavy stack is imported by `run`, after the config has been checked.
"""

import json
import os
import pathlib
import sys

from absl import logging

from data_pipelines import readers
from mird_jax import config_check
from mird_jax import workdir as workdir_lib

MODES = ("train", "eval", "predict", "describe", "benchmark", "profile", "multiseed",
         "compare")
NO_WORKDIR_MODES = ("describe", "benchmark", "profile", "compare")
NO_CONFIG_MODES = ("compare",)


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


def run(config, workdir: str | None, mode: str, *, split: str = "test",
        step: int | None = None, input_path: str | None = None,
        devices: list[int] | None = None, as_json: bool = False) -> None:
  logging.get_absl_handler().addFilter(_QuietLibraries())
  _drop_closed_loop_callbacks()
  if mode not in MODES:
    raise ValueError(f"unknown --mode={mode!r}; expected one of {', '.join(MODES)}")
  config_check.validate(config)
  if mode == "eval":
    splits = readers.SPLITS + (("unlabeled",) if config.data.unlabeled_file else ())
    if split not in splits:
      raise config_check.ConfigError(f"--split={split!r} is not a split of this dataset; "
                                     f"expected one of {', '.join(splits)}")
  if mode == "predict" and not input_path:
    raise ValueError("--mode=predict needs --input FILE")
  if mode in ("eval", "predict"):  # Nothing to restore: say so before anything is built.
    if not workdir:
      raise ValueError(f"--mode={mode} needs --workdir")
    workdir_lib.require_trained(workdir, step, mode)
  if mode == "benchmark" and devices:
    # Fakes that many CPU devices (a GPU or TPU backend ignores it); only effective before
    # JAX first starts a backend, which in run.py's process is just below.
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        f"--xla_force_host_platform_device_count={max(devices)}"])
  # pylint: disable=g-import-not-at-top  # The heavy stack, only once the input is checked.
  import jax
  from mird_jax import benchmark
  from mird_jax import describe
  from mird_jax import inference
  from mird_jax import multiseed
  from mird_jax import parallel
  from mird_jax import reporting
  from mird_jax import step_profile
  from mird_jax import train
  # pylint: enable=g-import-not-at-top
  if mode == "describe":
    print(describe.describe(config))
    return
  if mode == "benchmark":
    records = (benchmark.sweep(config, devices) if devices else [benchmark.measure(config)])
    print(json.dumps(records, indent=2) if as_json else
          "\n".join(benchmark.text(r) for r in records))
    return
  if mode == "profile":
    print(step_profile.report(config))
    return
  if not workdir:
    raise ValueError(f"--mode={mode} needs --workdir")
  if config.train.distributed:
    if "cpu" in os.environ.get("JAX_PLATFORMS", ""):  # Before any backend exists.
      os.environ["XLA_FLAGS"] = " ".join(
          [os.environ.get("XLA_FLAGS", ""), parallel.CPU_MULTIPROCESS_XLA_FLAGS]).strip()
    jax.distributed.initialize()
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  workdir_path = pathlib.Path(workdir)
  if mode == "multiseed":
    summary = multiseed.run(config, workdir_path)
    print(f"wrote {workdir_path / 'summary.md'} ({len(summary['seeds'])} seeds)")
    return
  if mode == "train":
    results = train.train_and_evaluate(config, workdir_path)
    print(reporting.dumps({k: results[k] for k in ("selected_epoch", "test")}), end="")
    if "probes_test" in results:
      print(probe_comparison(results))
  elif mode == "eval":
    result = inference.evaluate_split(config, workdir_path, split, step)
    print(reporting.dumps({"split": split, "step": step or "best", "metrics": result}), end="")
  else:
    print(inference.predict_file(config, workdir_path, input_path, step))


def probe_comparison(results: dict) -> str:
  """The model's test Corr/MAE beside the ridge probes' (one modality each, and all three)."""
  lines = ["test Corr / MAE: model {:.3f} / {:.3f}".format(results["test"]["Corr"],
                                                          results["test"]["MAE"])]
  for name, m in results["probes_test"].items():
    lines.append(f"  ridge probe, {name}: {m['Corr']:.3f} / {m['MAE']:.3f}")
  return "\n".join(lines)


def compare(workdirs: list[str], reference: str | None, metrics: list[str] | None) -> str:
  """`--mode=compare`: the markdown table of several multi-seed workdirs (no config)."""
  from mird_jax import compare as compare_lib  # pylint: disable=g-import-not-at-top
  return compare_lib.table(workdirs, reference,
                           tuple(metrics) if metrics else compare_lib.HEADLINE)
