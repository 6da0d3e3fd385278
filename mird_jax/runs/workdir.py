"""What a workdir holds, read without JAX or Orbax (for the checks before any work).

  config.json     the run's identity (outputs.record_config)
  progress.json   the commit record: the step a rerun resumes from (checkpoint.py)
  ckpt/<step>/    latest checkpoints; best/<step>/ the selected params
  results.json    written last: the run is finished
  workdir.lock    held by the training that runs there (workdir_lock.py)
  discarded/<n>/  what train.restart moved aside (restart.py)
"""

import json
import pathlib

from mird_jax.runs import errors

PROGRESS = "progress.json"


def step_dirs(directory) -> list[int]:
  """Finalised Orbax steps in `directory` (a save in progress has a temporary name)."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def read_progress(workdir) -> dict | None:
  """The commit record, or None where no step was committed."""
  path = pathlib.Path(workdir) / PROGRESS
  if not path.exists():
    return None
  try:
    record = json.loads(path.read_text())
    int(record["step"])
    return record
  except (ValueError, KeyError, TypeError) as e:
    raise errors.RunError(
        f"{path} cannot be read ({type(e).__name__}: {e}); it records which checkpoint the "
        "run resumes from: restore it, or start over with "
        "--config.train.restart=from_scratch") from e


def holds_progress(workdir) -> bool:
  """Whether `workdir` holds a run that trained (a committed step, a checkpoint or its
  results), or a multi-seed protocol with such a seed: its config is then its identity."""
  w = pathlib.Path(workdir)
  return ((w / PROGRESS).exists() or (w / "results.json").exists()
          or (w / "summary.json").exists() or bool(step_dirs(w / "ckpt"))
          or any(holds_progress(p) for p in w.glob("seed_*") if p.is_dir()))


def is_protocol(workdir) -> bool:
  """Whether `workdir` is a multi-seed workdir (it holds seed_<k>/ runs)."""
  return any(pathlib.Path(workdir).glob("seed_*/config.json"))


def require_trained(workdir, step: int | None, mode: str) -> None:
  """Stops eval/predict in one line, before anything is built, where there is nothing to
  restore."""
  w = pathlib.Path(workdir)
  if not w.is_dir():
    raise errors.RunError(f"--workdir={w}: no such directory; --mode={mode} restores a run "
                          "trained there (--mode=train)")
  if step is None and not step_dirs(w / "best"):
    raise errors.RunError(f"{w} holds no trained run (no checkpoint in {w / 'best'}); train "
                          f"there first (--mode=train), or pass --step=N for a checkpoint "
                          f"in ckpt/ (kept: {step_dirs(w / 'ckpt')})")
  if step is not None and step not in step_dirs(w / "ckpt"):
    raise errors.RunError(f"{w / 'ckpt'}: no checkpoint at step {step} (kept: "
                          f"{step_dirs(w / 'ckpt')})")
