"""How a training starts in a workdir that already holds one: `train.restart`.

  auto          resume from the last committed step (mird_jax/runs/checkpoint.py), or start
                fresh when the workdir holds no progress. The default.
  from_scratch  move this run's checkpoints and outputs to DIR/discarded/<n>/, then start
                fresh (the workdir then holds no progress, so a changed config is accepted).
  <step>        resume from ckpt/<step>, an older kept checkpoint (for when the committed
                one is damaged): the checkpoints after it and the finished run's outputs
                move to DIR/discarded/<n>/.

Nothing is deleted: what is moved aside stays until the user deletes it. The data a run
generated or built in its workdir (raw/, tfds/) stays where it is. Each rerun with the
option set does it again, so it is meant for one command, not for a notebook's defaults.
"""

import pathlib

from absl import logging

from mird_jax.runs import errors
from mird_jax.runs import outputs
from mird_jax.runs import workdir as workdir_lib

DISCARDED = "discarded"
# What belongs to one training (or, for a multi-seed workdir, to the whole protocol).
RUN_ENTRIES = (workdir_lib.PROGRESS, "config.json", "results.json", "metrics.jsonl",
               "curves.png", "latents.png", "ckpt", "best", "tensorboard", "summary.json",
               "summary.md")
FINISHED_OUTPUTS = ("results.json", "curves.png", "latents.png")


def apply(restart: str, workdir, multiseed: bool = False) -> None:
  """Carries out `train.restart` (already validated) before the run reads its workdir; the
  caller holds the workdir's lock."""
  w = pathlib.Path(workdir)
  if restart == "auto":
    return
  if restart == "from_scratch":
    entries = [w / n for n in RUN_ENTRIES] + sorted(w.glob("predictions*.csv"))
    entries += sorted(w.glob("seed_*")) if multiseed else []
    moved = _move_aside(w, [e for e in entries if e.exists()])
    if moved:
      logging.warning("train.restart=from_scratch: moved the previous run to %s", moved)
    return
  if multiseed:
    raise errors.RunError(f"--config.train.restart={restart} names one run's checkpoint: use "
                          f"it with --mode=train --workdir={w}/seed_<k>")
  _rewind(w, int(restart))


def _rewind(w: pathlib.Path, step: int) -> None:
  steps = workdir_lib.step_dirs(w / "ckpt")
  if step not in steps:
    raise errors.RunError(f"--config.train.restart={step}: there is no checkpoint "
                          f"{w / 'ckpt' / str(step)} (kept: {steps})")
  record = workdir_lib.read_progress(w) if (w / workdir_lib.PROGRESS).exists() else None
  later = [w / d / str(s) for d in ("ckpt", "best") for s in workdir_lib.step_dirs(w / d)
           if s > step]
  later += [w / n for n in FINISHED_OUTPUTS] + sorted(w.glob("predictions*.csv"))
  later += [w / workdir_lib.PROGRESS]
  moved = _move_aside(w, [p for p in later if p.exists()], keep_layout=True)
  kept = {s: b for s, b in (record or {}).get("kept", {}).items() if int(s) <= step}
  outputs.atomic_write(w / workdir_lib.PROGRESS, outputs.dumps({"step": step, "kept": kept}))
  logging.warning("train.restart=%d: resuming from ckpt/%d; moved what came after it to %s",
                  step, step, moved)


def _move_aside(w: pathlib.Path, paths, keep_layout: bool = False) -> pathlib.Path | None:
  """Renames `paths` (inside `w`) into a new DIR/discarded/<n>/; returns it, or None."""
  if not paths:
    return None
  root = w / DISCARDED
  root.mkdir(exist_ok=True)
  taken = [int(p.name) for p in root.iterdir() if p.name.isdigit()]
  dest = root / str(max(taken, default=0) + 1)
  for p in paths:
    target = dest / (p.relative_to(w) if keep_layout else p.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    p.rename(target)
  return dest
