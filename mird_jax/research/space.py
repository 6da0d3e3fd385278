"""The search-space grammar of `config.sweep.space`: parsed and checked against the config
before any work, then turned into Optuna suggestions, one per entry, for each trial.

  config.sweep.space = (("optim.main_lr", "loguniform(1e-4, 3e-3)"),
                        ("club.steps", "int(1, 10)"),
                        ("model.latent_dropout", "choice(0.1, 0.3, 0.5)"))

  uniform(lo, hi)          a float in [lo, hi]
  loguniform(lo, hi)       a float in [lo, hi], uniform in log (0 < lo)
  quniform(lo, hi, step)   lo, lo + step, ..., hi (hi - lo a multiple of step)
  int(lo, hi)              an integer in [lo, hi]; int(lo, hi, step) every step-th
  logint(lo, hi)           an integer in [lo, hi], uniform in log (0 < lo)
  choice(v1, v2, ...)      one of the listed values (numbers, strings, True/False)

Light on purpose (no Optuna, no JAX): main.check parses the space with the rest of the
config. Every error is one line naming the entry.
"""

import ast
import dataclasses
import math

from mird_jax import config_check

# Keys a trial may not change: what the search is compared on (the data, the metric it
# selects with, the seed every trial shares) and how the run itself is organised.
FIXED = ("seed", "num_seeds", "sweep", "data.name", "data.format", "data.file",
         "data.unlabeled_file", "data.factors_file", "data.data_dir", "data.manual_dir",
         "data.metric_dataset", "data.synthetic", "train.select_metric", "train.select_mode",
         "train.restart", "train.distributed", "train.num_devices", "diagnostics")
FORMS = ("uniform(lo, hi)", "loguniform(lo, hi)", "quniform(lo, hi, step)",
         "int(lo, hi[, step])", "logint(lo, hi)", "choice(v1, v2, ...)")
_ARITY = {"uniform": (2, 2), "loguniform": (2, 2), "quniform": (3, 3), "int": (2, 3),
          "logint": (2, 2), "choice": (1, None)}


@dataclasses.dataclass(frozen=True)
class Param:
  """One entry: the config key it sets and the distribution it is drawn from."""
  key: str
  kind: str  # A key of _ARITY.
  args: tuple

  def candidates(self) -> tuple:
    """The values whose validity stands for every draw: the ends of a range, every choice."""
    return self.args if self.kind == "choice" else self.args[:2]

  def suggest(self, trial):
    """Draws (or, for a trial that has it, reads back) this entry's value from an Optuna
    trial."""
    a = self.args
    if self.kind == "choice":
      return trial.suggest_categorical(self.key, list(a))
    if self.kind in ("int", "logint"):
      return trial.suggest_int(self.key, a[0], a[1], step=a[2] if len(a) > 2 else 1,
                               log=self.kind == "logint")
    return trial.suggest_float(self.key, a[0], a[1], log=self.kind == "loguniform",
                               step=a[2] if self.kind == "quniform" else None)

  def __str__(self):
    return f"{self.kind}({', '.join(map(repr, self.args))})"


class SpaceError(config_check.ConfigError):
  """A malformed or inapplicable sweep.space entry; the message is one line naming it."""


def _literal(node, where: str):
  try:
    value = ast.literal_eval(node)
  except ValueError:
    raise SpaceError(f"{where}: {ast.unparse(node)!r} is not a literal (a number, a quoted "
                     "string, True or False)") from None
  if not isinstance(value, (bool, int, float, str)):
    raise SpaceError(f"{where}: {value!r} is a {type(value).__name__}; values are numbers, "
                     "strings, True or False")
  return value


def _number(value, where: str, integer: bool):
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise SpaceError(f"{where}: {value!r} is not a number")
  if integer and not isinstance(value, int):
    raise SpaceError(f"{where}: {value!r} is not an integer")
  if not math.isfinite(value):
    raise SpaceError(f"{where}: {value!r} is not finite")
  return value


def _check_range(kind: str, args: tuple, where: str) -> tuple:
  integer = kind in ("int", "logint")
  args = tuple(_number(a, where, integer) for a in args)
  lo, hi = args[0], args[1]
  if not lo < hi:
    raise SpaceError(f"{where}: the low end {lo!r} must be below the high end {hi!r}")
  if kind in ("loguniform", "logint") and lo <= 0:
    raise SpaceError(f"{where}: a log range needs a low end > 0, got {lo!r}")
  if len(args) > 2:
    step = args[2]
    if not step > 0:
      raise SpaceError(f"{where}: the step {step!r} must be > 0")
    steps = (hi - lo) / step
    if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
      raise SpaceError(f"{where}: hi - lo = {hi - lo!r} is not a multiple of the step "
                       f"{step!r}")
  return tuple(float(a) for a in args) if not integer else args


def parse_entry(key: str, spec) -> Param:
  """One (key, spec) pair as a Param; raises SpaceError naming it when malformed."""
  where = f"sweep.space[{key!r}]={spec!r}"
  if not isinstance(spec, str):
    raise SpaceError(f"{where}: the distribution must be a string such as "
                     "'loguniform(1e-4, 1e-2)'")
  try:
    node = ast.parse(spec.strip(), mode="eval").body
  except SyntaxError:
    node = None
  if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.keywords:
    raise SpaceError(f"{where}: not a distribution; expected one of {', '.join(FORMS)}")
  kind = node.func.id
  if kind not in _ARITY:
    raise SpaceError(f"{where}: unknown distribution {kind!r}; expected one of "
                     f"{', '.join(FORMS)}")
  low, high = _ARITY[kind]
  if len(node.args) < low or (high is not None and len(node.args) > high):
    form = next(f for f in FORMS if f.startswith(kind + "("))
    raise SpaceError(f"{where}: {kind} takes {form}, got {len(node.args)} argument(s)")
  args = tuple(_literal(a, where) for a in node.args)
  if kind == "choice":
    if len(set(map(repr, args))) != len(args):
      raise SpaceError(f"{where}: a value is listed twice")
  else:
    args = _check_range(kind, args, where)
  return Param(key=key, kind=kind, args=args)


def _entries(space) -> list[tuple]:
  if not isinstance(space, (tuple, list)):
    raise SpaceError(f"sweep.space={space!r}: expected ((key, distribution), ...) pairs")
  for entry in space:
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2
            and isinstance(entry[0], str)):
      raise SpaceError(f"sweep.space entry {entry!r}: expected a (dotted key, distribution) "
                       "pair such as ('optim.main_lr', 'loguniform(1e-4, 1e-2)')")
  keys = [k for k, _ in space]
  twice = sorted({k for k in keys if keys.count(k) > 1})
  if twice:
    raise SpaceError(f"sweep.space names {twice[0]!r} twice")
  return [tuple(e) for e in space]


def _lookup(config, key: str):
  """The config's value at the dotted `key`, or SpaceError with ml_collections' did-you-mean
  hint for a misspelled part."""
  node = config
  for i, part in enumerate(key.split(".")):
    try:
      node = getattr(node, part)
    except AttributeError as e:
      hint = config_check.unknown_key(e)[1]
      where = ".".join(key.split(".")[:i]) or "the config"
      raise SpaceError(f"sweep.space[{key!r}]: {where} has no key {part!r}. {hint}".strip()
                       ) from None
  if hasattr(node, "items"):
    raise SpaceError(f"sweep.space[{key!r}] names a group of keys, not one value; name one "
                     f"of {', '.join(sorted(node.keys()))}")
  return node


def _check_type(param: Param, current) -> None:
  where = f"sweep.space[{param.key!r}]={str(param)!r}"
  if isinstance(current, bool):
    ok = param.kind == "choice" and all(isinstance(v, bool) for v in param.args)
    expected = "choice(True, False)"
  elif isinstance(current, int):
    ok = (param.kind in ("int", "logint") or param.kind == "choice" and all(
        isinstance(v, int) and not isinstance(v, bool) for v in param.args))
    expected = "int(..), logint(..) or a choice of integers"
  elif isinstance(current, float):
    ok = param.kind != "choice" or all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in param.args)
    expected = "a range or a choice of numbers"
  elif isinstance(current, str):
    ok = param.kind == "choice" and all(isinstance(v, str) for v in param.args)
    expected = "a choice of strings"
  else:
    raise SpaceError(f"{where}: the key holds a {type(current).__name__} ({current!r}); "
                     "only numbers, strings and booleans can be searched")
  if not ok:
    raise SpaceError(f"{where}: the key holds a {type(current).__name__} ({current!r}); "
                     f"expected {expected}")


def _fixed(key: str) -> str | None:
  return next((f for f in FIXED if key == f or key.startswith(f + ".")), None)


def parse(config) -> list[Param]:
  """config.sweep.space as Params, each checked against the config: the key exists and is
  not fixed, the distribution fits its type, and the config validates at every candidate
  (config_check.validate). Raises SpaceError (one line) on the first problem."""
  entries = _entries(config.sweep.space)
  if not entries:
    raise SpaceError("sweep.space is empty: declare ((key, distribution), ...) to search, or "
                     "take a ready space from configs/sweeps.py")
  params = []
  for key, spec in entries:
    fixed = _fixed(key)
    if fixed:
      raise SpaceError(f"sweep.space[{key!r}]: {fixed} is fixed across trials (the data, the "
                       "selection metric, the seed and the run's layout are what the trials "
                       "are compared on); search other keys")
    current = _lookup(config, key)
    param = parse_entry(key, spec)
    _check_type(param, current)
    for value in param.candidates():
      try:
        config_check.validate(apply(config, {key: value}))
      except config_check.ConfigError as e:
        raise SpaceError(f"sweep.space[{key!r}]={spec!r}: the value {value!r} fails: {e}"
                         ) from None
    params.append(param)
  return params


def apply(config, overrides: dict):
  """A locked copy of `config` with each dotted key of `overrides` set."""
  out = config.copy_and_resolve_references()
  out.unlock()
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = out
    for p in parents:
      node = getattr(node, p)
    current = getattr(node, leaf)
    setattr(node, leaf, float(value) if isinstance(current, float) else value)
  out.lock()
  return out


def objective(config) -> tuple[str, str]:
  """(validation metric, "minimize" | "maximize") the sweep optimises: sweep.metric and
  sweep.direction, by default the run's own selection (train.select_metric, select_mode)."""
  s, t = config.sweep, config.train
  metric = s.metric or t.select_metric
  if s.direction:
    return metric, s.direction
  if metric != t.select_metric:
    raise config_check.ConfigError(
        f"sweep.metric={metric!r} is not train.select_metric={t.select_metric!r}: say which "
        "way is better with --config.sweep.direction=minimize or maximize")
  return metric, {"min": "minimize", "max": "maximize"}[t.select_mode]


def check_storage(url: str) -> None:
  """sweep.storage is a database URL whose driver is installed (SQLAlchemy parses it; no
  connection is made here)."""
  import sqlalchemy  # pylint: disable=g-import-not-at-top  # Only for a sweep with a URL.
  try:
    sqlalchemy.engine.make_url(url).get_dialect().import_dbapi()
  except sqlalchemy.exc.ArgumentError:
    raise config_check.ConfigError(
        f"sweep.storage={url!r} is not a database URL such as "
        "postgresql://USER:PASSWORD@HOST/DB or sqlite:////abs/path/sweep.db") from None
  except (ImportError, sqlalchemy.exc.NoSuchModuleError) as e:
    scheme = url.partition(":")[0]
    raise config_check.ConfigError(
        f"sweep.storage: no Python driver for {scheme}:// URLs is installed ({e}); "
        "requirements.txt brings psycopg for postgresql://, other databases need their "
        "SQLAlchemy driver") from None
