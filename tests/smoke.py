"""The suite's shared smoke config (importable without conftest's environment, e.g. by
the multi-host workers)."""


def smoke_config():
  """The demo's smoke model on a synthetic set large enough to learn from in seconds.

  The session-wide `smoke_exp` is built from it once; tests that change a key build (and
  compile) their own. warmup_frac 0 gives a non-zero learning rate from step 0; the larger
  rates let 3 short epochs learn the synthetic task.
  """
  from configs import demo  # pylint: disable=g-import-not-at-top
  config = demo.get_config("smoke")
  s = config.data.synthetic
  s.n_train, s.n_valid, s.n_test, s.n_unlabeled = 320, 21, 160, 64
  config.optim.warmup_frac = 0.0
  config.optim.main_lr, config.optim.bert_lr = 3e-3, 1e-3
  config.train.epochs = 3
  return config


def train_step_for(config, model, mesh):
  """The jitted train step of `model` under `config` on `mesh`, as experiment.build makes
  it (one compiled program per step settings, shared with every run that uses them)."""
  from mird_jax.training import optim  # pylint: disable=g-import-not-at-top
  from mird_jax.training import step  # pylint: disable=g-import-not-at-top
  return step.jit_train_step(model, mesh, step.StepConfig.from_config(config, model),
                             optim.Settings.from_config(config))
