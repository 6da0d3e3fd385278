"""The sweep's search-space grammar: every form parses to the distribution Optuna draws
from, and every malformed entry, unknown key or inapplicable value stops in one line that
names it."""

import optuna
import pytest

from configs import demo
from configs import sweeps
from mird_jax import config_check
from mird_jax.research import space


@pytest.fixture(scope="module")
def base():
  return demo.get_config("smoke")


def _with(config, entries):
  out = config.copy_and_resolve_references()
  out.sweep.space = tuple(entries)
  out.lock()
  return out


FORMS = [
    ("optim.main_lr", "uniform(0.001, 0.01)",
     optuna.distributions.FloatDistribution(0.001, 0.01)),
    ("optim.main_lr", "loguniform(1e-5, 3e-3)",
     optuna.distributions.FloatDistribution(1e-5, 3e-3, log=True)),
    ("model.latent_dropout", "quniform(0.1, 0.5, 0.1)",
     optuna.distributions.FloatDistribution(0.1, 0.5, step=0.1)),
    ("club.steps", "int(1, 10)", optuna.distributions.IntDistribution(1, 10)),
    ("club.steps", "int(2, 10, 2)", optuna.distributions.IntDistribution(2, 10, step=2)),
    ("club.hidden", "logint(4, 64)", optuna.distributions.IntDistribution(4, 64, log=True)),
    ("model.latent_dropout", "choice(0.1, 0.3, 0.5)",
     optuna.distributions.CategoricalDistribution([0.1, 0.3, 0.5])),
    ("model.fusion", "choice('wsa', 'wa')",
     optuna.distributions.CategoricalDistribution(["wsa", "wa"])),
    ("club.refresh_latents", "choice(True, False)",
     optuna.distributions.CategoricalDistribution([True, False])),
    ("optim.main_lr", " loguniform( 1e-5 , 3e-3 ) ",
     optuna.distributions.FloatDistribution(1e-5, 3e-3, log=True)),
]


@pytest.mark.parametrize("key,spec,distribution", FORMS)
def test_every_form_draws_from_its_distribution(base, key, spec, distribution):
  (param,) = space.parse(_with(base, [(key, spec)]))
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  trial = study.ask()
  value = param.suggest(trial)
  assert study.trials[0].distributions[key] == distribution
  assert distribution._contains(distribution.to_internal_repr(value))  # pylint: disable=protected-access
  # The drawn value sets the key with the key's own type.
  applied = config_check.get(space.apply(base, {key: value}), key)
  assert type(applied) is type(config_check.get(base, key)) and applied == value


MALFORMED = [
    ("optim.main_lr", "loguniform(1e-5)", "loguniform takes loguniform(lo, hi), got 1"),
    ("optim.main_lr", "uniform(1, 2, 3)", "uniform takes uniform(lo, hi), got 3"),
    ("optim.main_lr", "gaussian(0, 1)", "unknown distribution 'gaussian'"),
    ("optim.main_lr", "1e-3", "not a distribution"),
    ("optim.main_lr", "loguniform(1e-5, 3e-3", "not a distribution"),
    ("optim.main_lr", "loguniform(lo=1e-5, hi=1e-3)", "not a distribution"),
    ("optim.main_lr", "loguniform(0, 1e-3)", "a log range needs a low end > 0"),
    ("optim.main_lr", "uniform(0.01, 0.001)", "must be below the high end"),
    ("optim.main_lr", "uniform(0.001, inf)", "not a literal"),
    ("optim.main_lr", "uniform('a', 1.0)", "'a' is not a number"),
    ("optim.main_lr", "quniform(0.0, 1.0, 0.3)", "not a multiple of the step"),
    ("optim.main_lr", "quniform(0.0, 1.0, 0.0)", "the step 0.0 must be > 0"),
    ("club.steps", "int(1.5, 10)", "1.5 is not an integer"),
    ("club.steps", "choice()", "choice takes choice(v1, v2, ...), got 0"),
    ("club.steps", "choice(1, 2, 1)", "a value is listed twice"),
    ("club.steps", "choice(1, [2])", "is a list"),
    ("optim.main_lr", 1e-3, "the distribution must be a string"),
]


@pytest.mark.parametrize("key,spec,message", MALFORMED)
def test_each_malformed_entry_is_one_line_naming_it(base, key, spec, message):
  with pytest.raises(space.SpaceError) as e:
    space.parse(_with(base, [(key, spec)]))
  text = str(e.value)
  assert message in text and f"sweep.space[{key!r}]" in text and "\n" not in text


INAPPLICABLE = [
    ("optim.main_lrr", "loguniform(1e-5, 1e-3)",
     "optim has no key 'main_lrr'. Did you mean \"main_lr\""),
    ("optimm.main_lr", "loguniform(1e-5, 1e-3)", "the config has no key 'optimm'"),
    ("optim", "loguniform(1e-5, 1e-3)", "names a group of keys"),
    ("seed", "int(0, 10)", "seed is fixed across trials"),
    ("data.synthetic.n_train", "int(10, 100)", "data.synthetic is fixed across trials"),
    ("train.select_metric", "choice('MAE', 'Corr')", "train.select_metric is fixed"),
    ("sweep.trials", "int(1, 4)", "sweep is fixed"),
    ("club.steps", "uniform(1.0, 4.0)", "the key holds a int (2); expected int(..)"),
    ("model.fusion", "choice(1, 2)", "expected a choice of strings"),
    ("club.refresh_latents", "choice(0, 1)", "expected choice(True, False)"),
    ("optim.groups", "choice('a', 'b')", "only numbers, strings and booleans"),
    ("model.latent_dropout", "choice(0.1, 'high')", "a choice of numbers"),
    ("model.fusion", "choice('wsa', 'softmax')",
     "the value 'softmax' fails: model.fusion='softmax' is not allowed"),
    ("optim.main_lr", "uniform(-1.0, 1.0)",
     "the value -1.0 fails: optim.main_lr=-1.0 must be >= 0"),
]


@pytest.mark.parametrize("key,spec,message", INAPPLICABLE)
def test_keys_and_values_are_checked_against_the_config(base, key, spec, message):
  with pytest.raises(space.SpaceError) as e:
    space.parse(_with(base, [(key, spec)]))
  assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("entries,message", [
    ((), "sweep.space is empty"),
    ((("club.steps", "int(1, 3)"), ("club.steps", "int(1, 4)")), "names 'club.steps' twice"),
    ((("club.steps",),), "expected a (dotted key, distribution) pair"),
])
def test_the_space_as_a_whole_is_checked(base, entries, message):
  with pytest.raises(space.SpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
    space.parse(_with(base, entries))


def test_the_objective_defaults_to_the_runs_selection(base):
  assert space.objective(base) == ("MAE", "minimize")
  c = base.copy_and_resolve_references()
  c.sweep.metric, c.sweep.direction = "Corr", "maximize"
  assert space.objective(c) == ("Corr", "maximize")
  c.sweep.direction = ""
  with pytest.raises(config_check.ConfigError, match="sweep.direction"):
    space.objective(c)


@pytest.mark.parametrize("base_name", sweeps.BASES)
@pytest.mark.parametrize("model", sweeps.MODELS)
def test_every_ready_space_parses_against_its_config(base_name, model):
  config = sweeps.get_config(f"{base_name},{model}")
  params = space.parse(config)
  assert [p.key for p in params] == [k for k, _ in sweeps.space(base_name, model)]
  if base_name != "smoke":  # The same keys for a family on every real base and the demo.
    assert [p.key for p in params] == [p.key for p in space.parse(
        sweeps.get_config(f"mosi,{model}"))]
