r"""Entry point: parses flags and hands off to mird_jax. The only file that defines flags.

  python run.py --config=configs/mosi.py --workdir=DIR [--mode=train|eval|predict]
  python run.py --config=configs/public.py --workdir=DIR --mode=eval_public --input=STATE.npz
  python run.py --config=configs/mosi.py --mode=describe|benchmark|profile
  python run.py --config=configs/real.py --mode=benchmark_epoch --workdir=DIR  # buckets
  python run.py --config=configs/mosi.py:smoke --workdir=DIR --config.seed=3
  python run.py --config=configs/demo.py --mode=multiseed --workdir=DIR [--config.num_seeds=5]
  python run.py --config=configs/sweeps.py:demo,mird --mode=sweep --workdir=DIR
  python run.py --mode=compare --workdirs=DIR1,DIR2,... [--reference=DIR1]
"""

import errno
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

# Both are light: JAX, Flax, Orbax and TFDS are imported by mird_main.run, after the flags
# and the config have been checked.
from data_pipelines.checks import DataError
from mird_jax import config_check
from mird_jax import huge_pages
from mird_jax import main as mird_main
from mird_jax.runs import errors

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with a variant: configs/mosi.py:smoke.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for data, checkpoints and results (outside the repo); every "
    "mode but describe and benchmark needs it.")
_MODE = flags.DEFINE_enum("mode", "train", list(mird_main.MODES), "What to run.")
_SPLIT = flags.DEFINE_string("split", "test", "--mode=eval/eval_public: the split to score.")
_STEP = flags.DEFINE_integer("step", None, "--mode=eval/predict: restore the latest checkpoint "
                             "at this step instead of the best one.")
_INPUT = flags.DEFINE_string("input", None, "--mode=predict: a feature file in a supported "
                             "format (a pickle: only pass files you trust); "
                             "--mode=eval_public: an .npz of the authors' state_dict.")
_WORKDIRS = flags.DEFINE_list("workdirs", None, "--mode=compare: multi-seed workdirs, one "
                              "row each.")
_REFERENCE = flags.DEFINE_string("reference", None, "--mode=compare: the row the paired tests "
                                 "compare against (a --workdirs entry or its folder name; "
                                 "default the first).")
_DEVICES = flags.DEFINE_list("devices", None, "--mode=benchmark: device counts to time, e.g. "
                              "1,2,4,8, each in float32 and bfloat16 (on a CPU, that many "
                              "devices are faked).")
_JSON = flags.DEFINE_bool("json", False, "--mode=benchmark|benchmark_epoch: print the records "
                          "as JSON.")
_METRICS = flags.DEFINE_list("metrics", None, "--mode=compare: test metrics to tabulate "
                             "(default MAE, Corr, Non0_acc_2, Non0_F1_score, Mult_acc_7).")


def _last_line(text: str) -> str:
  return [line for line in str(text).strip().splitlines() if line.strip()][-1].strip()


def _parse_flags(argv: list[str]) -> list[str]:
  """Parses flags and loads the config now, so bad input stops in one line before any work."""
  try:
    args = flags.FLAGS(argv)
    if not mird_main.MODES[_MODE.value].needs_config:
      return args
    if not flags.FLAGS["config"].present:
      sys.exit(f"run.py: --mode={_MODE.value} needs --config")
    _CONFIG.value.seed  # pylint: disable=pointless-statement  # Forces the lazy load.
  except flags.Error as e:  # Unknown --mode, missing flags, bad values, a failing get_config.
    sys.exit(f"run.py: {_first_line(e)}: {_last_line(e)}" if "\n" in str(e) else f"run.py: {e}")
  except OSError as e:  # Config file missing or unreadable.
    sys.exit(f"run.py: --config={flags.FLAGS['config'].config_filename}: cannot load it: "
             f"{_last_line(e)}")
  except SyntaxError as e:  # The config file is not valid Python (raised while parsing).
    sys.exit(f"run.py: --config: {e.filename}, line {e.lineno}: {e.msg}: "
             f"{(e.text or '').strip()}")
  except (KeyError, AttributeError) as e:  # A --config.* override names no key.
    key, hint = config_check.unknown_key(e)
    given = [a.split("=")[0] for a in argv
             if a.startswith("--config.") and a.split("=")[0].rsplit(".", 1)[-1] == key]
    where = given[0] if given else "a --config.* override"
    sys.exit(f"run.py: {where}: the config has no key {key!r}. {hint}".strip())
  if _DEVICES.value and not all(d.isdigit() and int(d) > 0 for d in _DEVICES.value):
    sys.exit(f"run.py: --devices={','.join(_DEVICES.value)}: expected positive device counts "
             "such as 1,2,4,8")
  return args


# Errors of the machine, not of the run: said in one line; nothing committed is lost.
_SYSTEM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                  errno.EIO)


def _first_line(text) -> str:
  return str(text).strip().splitlines()[0].rstrip(":")


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  needs_config = mird_main.MODES[_MODE.value].needs_config
  try:
    mird_main.run(_CONFIG.value if needs_config else None, _WORKDIR.value, _MODE.value,
                  split=_SPLIT.value, step=_STEP.value, input_path=_INPUT.value,
                  devices=[int(d) for d in _DEVICES.value or []], as_json=_JSON.value,
                  workdirs=_WORKDIRS.value, reference=_REFERENCE.value,
                  metrics=_METRICS.value)
  # A mode without what it needs, bad input files, a config that does not fit the data or
  # the devices, a workdir that cannot go on as asked, a loss that went non-finite: one line.
  except (mird_main.UsageError, DataError, FileNotFoundError, config_check.ConfigError,
          errors.RunError, FloatingPointError) as e:
    sys.exit(f"run.py: {e}")
  except OSError as e:
    if e.errno not in _SYSTEM_ERRNOS:
      raise
    sys.exit(f"run.py: {e}; the run is kept up to its last committed checkpoint: fix this, "
             "then run the same command to resume")


if __name__ == "__main__":
  huge_pages.reexec_with_huge_pages()  # Faster CPU steps; no value changes.
  app.run(_main, flags_parser=_parse_flags)
