"""`--mode=sweep`: an Optuna search over `config.sweep.space` (research/space.py), every
trial an ordinary, exactly resumable run in <workdir>/trial_<n>/ that selects on
validation and never reads the test split; then the report (sweep_report.py) and, with
sweep.confirm_seeds = n, the best configuration and the base one over n fresh seeds.

Optuna holds the study: its samplers propose, its pruner stops, its RDB storage keeps
every trial (SQLite in the workdir by default, or any database URL in sweep.storage).
What this module adds is what makes a trial a run:

* Claims. Every process running the command takes a trial under <workdir>/sweep.lock (an
  flock, so the workers share the workdir: on several machines, a network file system)
  and holds <workdir>/trial_<n>/trial.lock while the trial runs. The claim first looks
  for a RUNNING trial whose lock nobody holds: its worker died (killed, preempted, a
  full disk), and the trial resumes from its last checkpoint, by train.train_and_evaluate
  as any rerun does. Otherwise, while fewer than sweep.trials trials have started, it
  asks Optuna for the next one. So together the workers run exactly sweep.trials trials,
  none twice, and the budget counts trials that ended (complete, pruned or failed).
* Seeds. The sampler is seeded for each trial from (sweep.seed, trial number), so a sweep
  that is killed and rerun proposes what an uninterrupted one would, given the same
  results; several workers at once still interleave in no fixed order.
* Ends. A non-finite loss or validation metric, or a config the trial's values make
  invalid, ends the trial as FAIL with the reason in its user attributes; a pruned trial
  ends as PRUNED at the epoch the pruner stopped it. The sweep goes on either way.
"""

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time

import numpy as np
import optuna
import sqlalchemy

from data_pipelines import tfds_builders
from mird_jax import config_check
from mird_jax.research import multiseed
from mird_jax.research import space as space_lib
from mird_jax.research import sweep_report
from mird_jax.runs import errors
from mird_jax.runs import outputs
from mird_jax.runs import train
from mird_jax.runs import workdir_lock

LOCK = "sweep.lock"
TRIAL_LOCK = "trial.lock"
OVERRIDES = "overrides.json"
# A rerun may extend the budget, add confirmation seeds or reach the same database by
# another URL: none of them changes what the study is.
NOT_STUDY_IDENTITY = ("train.restart", "data.max_abs_feature", "num_seeds", "sweep.trials",
                      "sweep.confirm_seeds", "sweep.storage")
STUDY = "study.json"  # The study this workdir's trials belong to, named once.
State = optuna.trial.TrialState


def trial_dir(workdir, number: int) -> pathlib.Path:
  return pathlib.Path(workdir) / f"trial_{number}"


def study_name(config) -> str:
  """sweep.study_name, or "sweep-" and a hash of what the study is (so that two configs
  never share a study by accident, and the same command always finds its own)."""
  if config.sweep.study_name:
    return config.sweep.study_name
  ident = outputs.identity(config.to_dict(), NOT_STUDY_IDENTITY)
  return "sweep-" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _recorded_study(config, workdir: pathlib.Path) -> str:
  """The study of the workdir's trials: the one named when the sweep started (so that a
  later version's hash cannot lose it), or the config's study name for a new sweep."""
  path = workdir / STUDY
  if not path.exists():
    return study_name(config)
  recorded = json.loads(path.read_text())["study"]
  if config.sweep.study_name and config.sweep.study_name != recorded:
    raise config_check.ConfigError(
        f"{workdir} holds the trials of study {recorded!r}, not sweep.study_name="
        f"{config.sweep.study_name!r}: use another --workdir for another study")
  return recorded


def storage_url(config, workdir) -> str:
  return config.sweep.storage or f"sqlite:///{(pathlib.Path(workdir) / 'sweep.db').resolve()}"


def _redacted(url: str) -> str:
  """A database URL without its password, for messages."""
  return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def _storage(url: str):
  # SQLite: a writer waits for another's lock instead of failing at once.
  kwargs = ({"connect_args": {"timeout": 120}} if url.startswith("sqlite") else
            {"pool_pre_ping": True})
  return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _sampler(sweep, number: int):
  seed = int(np.random.SeedSequence([sweep.seed, number]).generate_state(1)[0] % 2**31)
  if sweep.sampler == "random":
    return optuna.samplers.RandomSampler(seed=seed)
  return optuna.samplers.TPESampler(seed=seed, n_startup_trials=sweep.startup_trials)


def _pruner(sweep):
  if sweep.pruner == "median":
    return optuna.pruners.MedianPruner(n_startup_trials=sweep.startup_trials,
                                       n_warmup_steps=sweep.pruner_warmup_epochs)
  return optuna.pruners.NopPruner()


def trial_config(config, overrides: dict, workdir, seed: int | None = None):
  """`config` with a trial's values, reading the sweep's one dataset (built once in the
  sweep's workdir), resuming by default."""
  return multiseed.seed_config(space_lib.apply(config, overrides),
                               config.seed if seed is None else seed, workdir)


def _open(config, workdir: pathlib.Path, direction: str):
  """The study (created by the first worker), with the sweep's config recorded in the
  workdir and the dataset built, all under the sweep lock."""
  with workdir_lock.exclusive(workdir / LOCK):
    started = any(workdir.glob("trial_*"))
    outputs.record_config(config, workdir, started, NOT_STUDY_IDENTITY)
    storage = _storage(storage_url(config, workdir))
    study = optuna.create_study(storage=storage, study_name=_recorded_study(config, workdir),
                                direction=direction, load_if_exists=True,
                                sampler=_sampler(config.sweep, 0),
                                pruner=_pruner(config.sweep))
    ident = outputs.identity(config.to_dict(), NOT_STUDY_IDENTITY)
    recorded = study.user_attrs.get("config")
    if recorded is None:
      study.set_user_attr("config", ident)
    elif outputs.identity(recorded, NOT_STUDY_IDENTITY) != ident:  # Older lists too.
      raise config_check.ConfigError(
          f"sweep.study_name={study.study_name!r} in {_redacted(storage_url(config, workdir))} "
          "was started by a different config; use another study name or the same config")
    if not (workdir / STUDY).exists():
      outputs.atomic_write(workdir / STUDY, outputs.dumps({"study": study.study_name}))
    tfds_builders.prepare(trial_config(config, {}, workdir), workdir)
  return study


@dataclasses.dataclass
class Claim:
  trial: optuna.trial.Trial
  lock_fd: int
  resumed: bool
  reported: set  # Epochs whose validation metric the study already has.


def _claim(study, params, config, workdir: pathlib.Path) -> Claim | None:
  """The next trial for this worker (see the module docstring), or None when every trial
  has started."""
  with workdir_lock.exclusive(workdir / LOCK):
    trials = study.get_trials(deepcopy=False)
    for t in trials:
      if t.state == State.RUNNING:
        fd = workdir_lock.try_hold(trial_dir(workdir, t.number) / TRIAL_LOCK)
        if fd is not None:  # Its worker is gone: take the trial over where it stopped.
          study.sampler = _sampler(config.sweep, t.number)
          trial = optuna.trial.Trial(study, t._trial_id)  # pylint: disable=protected-access
          _suggest(trial, params, workdir)  # Reads back (draws any its worker had not).
          return Claim(trial, fd, True, set(t.intermediate_values))
    if sum(t.state != State.WAITING for t in trials) >= config.sweep.trials:
      return None
    waiting = [t.number for t in trials if t.state == State.WAITING]
    study.sampler = _sampler(config.sweep, min(waiting) if waiting else len(trials))
    trial = study.ask()  # An enqueued (WAITING) trial first, else a new one.
    fd = workdir_lock.try_hold(trial_dir(workdir, trial.number) / TRIAL_LOCK)
    if fd is None:
      raise errors.RunError(f"{trial_dir(workdir, trial.number)} is held by another process "
                         f"although trial {trial.number} is new: is a worker using this "
                         "study from another workdir?")
    _suggest(trial, params, workdir)
    return Claim(trial, fd, False, set())


def _suggest(trial, params, workdir) -> dict:
  """The trial's values (drawn now, or read back), also written to its overrides.json."""
  overrides = {p.key: p.suggest(trial) for p in params}
  sub = trial_dir(workdir, trial.number)
  trial.set_user_attr("workdir", sub.name)
  outputs.atomic_write(sub / OVERRIDES, outputs.dumps(
      {"trial": trial.number, "overrides": overrides,
       "space": {p.key: str(p) for p in params}}))
  return overrides


class _Reporter:
  """train_and_evaluate's on_epoch: each validated epoch's metric to the study (once),
  then the pruner's verdict."""

  def __init__(self, claim: Claim, metric: str):
    self.claim, self.metric = claim, metric

  def __call__(self, history: list[dict], done: bool) -> None:
    for entry in history:
      if entry["epoch"] not in self.claim.reported:
        value = entry["valid"].get(self.metric)
        self.claim.trial.report(float("nan") if value is None else float(value),
                                entry["epoch"])
        self.claim.reported.add(entry["epoch"])
    if history and not done and self.claim.trial.should_prune():
      raise optuna.TrialPruned(f"pruned after epoch {history[-1]['epoch']}")


def _fail(study, trial, reason: str) -> None:
  trial.set_user_attr("failure", reason)
  study.tell(trial, state=State.FAIL)


def _run_trial(study, claim: Claim, params, config, workdir, metric: str, train_fn,
               mesh) -> None:
  """Trains the claimed trial to its end and tells the study how it ended."""
  trial = claim.trial
  overrides = {p.key: trial.params[p.key] for p in params}
  try:
    cfg = trial_config(config, overrides, workdir)
    config_check.validate(cfg)
  except (config_check.ConfigError, TypeError, ValueError) as e:
    _fail(study, trial, f"config: {e}")
    return
  try:
    results = train_fn(cfg, trial_dir(workdir, trial.number), mesh=mesh, score_test=False,
                       on_epoch=_Reporter(claim, metric))
  except optuna.TrialPruned as e:
    trial.set_user_attr("pruned", str(e))
    study.tell(trial, state=State.PRUNED)
    return
  except FloatingPointError as e:  # A non-finite loss (train._check_finite) or no epoch.
    _fail(study, trial, f"non-finite: {e}")
    return
  value = results["valid"].get(metric)
  if value is None or not math.isfinite(value):
    _fail(study, trial, f"non-finite: validation {metric} is {value}")
    return
  trial.set_user_attr("selected_epoch", results["selected_epoch"])
  study.tell(trial, float(value))


def run(config, workdir, mesh=None, train_fn=None) -> dict:
  """Runs trials until every one has started and this worker's have ended, then writes
  the report (and the confirmation, once every trial has ended); returns sweep.json's
  content. `train_fn` replaces train.train_and_evaluate (tests of the search alone)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  train_fn = train_fn or train.train_and_evaluate
  params = space_lib.parse(config)
  metric, direction = space_lib.objective(config)
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # Our progress line says it.
  study = _open(config, workdir, direction)
  start = time.time()
  while (claim := _claim(study, params, config, workdir)) is not None:
    try:
      if claim.resumed:
        sweep_report.say(f"trial {claim.trial.number}: its worker stopped; resuming it from "
                         "its last checkpoint")
      t0 = time.time()
      _run_trial(study, claim, params, config, workdir, metric, train_fn, mesh)
    finally:
      os.close(claim.lock_fd)
    sweep_report.progress(study, config, claim.trial.number, time.time() - t0,
                          time.time() - start, metric)
  return _finish(study, config, workdir, params, metric, mesh, train_fn)


def _finish(study, config, workdir, params, metric, mesh, train_fn) -> dict:
  running = [t.number for t in study.get_trials(deepcopy=False, states=(State.RUNNING,))]
  confirmation = None
  if running:
    sweep_report.say(f"trials {running} still run in other workers; the last of them "
                     "writes the final report")
  elif config.sweep.confirm_seeds > 0 and study.get_trials(states=(State.COMPLETE,)):
    sweep_report.write(study, config, workdir, params, metric, None)  # The search, first.
    confirmation = _confirm(study, config, workdir, params, mesh, train_fn)
  return sweep_report.write(study, config, workdir, params, metric, confirmation,
                           running=tuple(running))


def _confirm(study, config, workdir, params, mesh, train_fn):
  """The best trial's config and the base config, each over sweep.confirm_seeds seeds
  (seed+1 ..., none the search trained on) with multiseed, in <workdir>/confirm/; the
  paired comparison (research/compare.py) of the two. None if another worker holds them."""
  del train_fn  # The confirmation is the multi-seed protocol itself, never replaced.
  best = study.best_trial
  overrides = {p.key: best.params[p.key] for p in params}
  rows = {f"trial_{best.number}": overrides, "base": {}}
  dirs = []
  for name, values in rows.items():
    cfg = trial_config(config, values, workdir, seed=config.seed + 1)
    cfg.unlock()
    cfg.num_seeds = config.sweep.confirm_seeds
    cfg.lock()
    sub = workdir / "confirm" / name
    sweep_report.say(f"confirming {name} over seeds {multiseed.seeds(cfg)} in {sub}")
    try:
      multiseed.run(cfg, sub, mesh=mesh)
    except workdir_lock.WorkdirBusy:
      sweep_report.say(f"{sub} is being confirmed by another worker; it writes the report")
      return None
    dirs.append(sub)
  return sweep_report.Confirmation(best=dirs[0], base=dirs[1])
