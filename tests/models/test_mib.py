"""MIB (E-, L-, C-MIB): shapes, the KL against its closed form and a numerical integral,
padding invariance, deterministic (and repeatable stochastic) evaluation, a train step that
lowers the loss on a fixed batch, and a preempted run that resumes to the same metrics.

Every variant runs the same smoke-size model on the smoke synthetic data; per variant one
Experiment (compiled steps) is built and shared by its tests.
"""

import dataclasses
import functools
import json
import os
import pathlib
import signal
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import integrate

from configs import mib_mosi
from mird_jax.models import factory
from mird_jax.models import mib
from mird_jax.runs import experiment
from mird_jax.runs import train
from mird_jax.training import losses
from mird_jax.training import sharding
from mird_jax.training import step as step_lib
from smoke import smoke_config

VARIANTS = ("early", "late", "complete")
DATA = pathlib.Path(tempfile.mkdtemp(prefix="mib_test_data_"))


def mib_config(variant: str, **mib_keys):
  """The suite's smoke setting (data, BERT, learning rates) with MIB's model and losses."""
  config = smoke_config()
  mib_mosi.apply_mib(config, variant)
  mib_mosi.apply_mib_smoke(config)
  config.optim.bert_lr, config.optim.main_lr = 1e-3, 3e-3
  config.optim.schedule = "warmup_decay"
  # One epoch of 6 steps (a preemption mid-epoch is the resume case that matters), one
  # BERT layer: compiling dominates these tests.
  config.train.epochs, config.train.patience, config.train.num_devices = 1, 1, 1
  config.bert.random.num_layers = 1
  s = config.data.synthetic
  s.n_train, s.n_test = 48, 40
  # One dataset for every run here (generated and built by the first).
  config.data.manual_dir, config.data.data_dir = str(DATA / "raw"), str(DATA / "tfds")
  # The diagnostics path (MIB's loss terms on a split, latents, figures) runs for one
  # variant: it is the same code for all three.
  config.diagnostics.enabled = variant == "complete"
  for key, value in mib_keys.items():
    setattr(config.model.mib, key, value)
  return config


def _batch(spec, n=6, seed=0):
  """A random canonical batch with varied lengths and zeros beyond them."""
  rng = np.random.default_rng(seed)
  b = {k: np.asarray(v) for k, v in factory.dummy_batch(spec, n).items()}
  t_len = rng.integers(3, spec.dims.text_len + 1, n)
  b["text_mask"] = (np.arange(spec.dims.text_len)[None] < t_len[:, None]).astype(np.int32)
  b["text_ids"] = rng.integers(104, spec.bert.vocab_size, (n, spec.dims.text_len)) * b["text_mask"]
  for m in ("audio", "vision"):
    t = b[m].shape[1]
    length = rng.integers(1, t + 1, n).astype(np.int32)
    valid = np.arange(t)[None, :, None] < length[:, None, None]
    b[m] = np.where(valid, rng.normal(size=b[m].shape), 0.0).astype(np.float32)
    b[f"{m}_len"] = length
  b["position"] = np.arange(n, dtype=np.int32)
  return {k: jnp.asarray(v) for k, v in b.items()}


def _abstract(config):
  """(model, params shapes, (prediction, aux) shapes): shapes only, nothing compiled."""
  model = factory.build(config)
  params = jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))
  out = jax.eval_shape(lambda p, b: model.apply({"params": p}, b), params,
                       _batch(model.spec))
  return model, params, out


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_latents_of_each_variant(variant):
  model, params, (pred, aux) = _abstract(mib_config(variant))
  s = model.spec
  assert pred.shape == (6,) and pred.dtype == jnp.float32
  unimodal = variant != "early"
  fused = variant != "late"
  width_m = s.bottleneck if unimodal else s.width
  for m in "lav":
    assert aux[f"z_{m}"].shape == (6, width_m)
    assert (f"mu_{m}" in aux) == unimodal and (f"pred_{m}" in aux) == unimodal
  assert aux["z_f"].shape == (6, s.bottleneck if fused else s.width)
  assert ("mu_f" in aux) == fused
  assert ("ib_l" in params) == unimodal and ("ib_f" in params) == fused
  assert ("out" in params) == (not fused)
  assert params["ib_f" if fused else "ib_l"]["hidden"]["kernel"].shape[1] == s.hidden
  assert mib.MIB.loss_terms(s) == (
      ["task"] + (["task/l", "task/a", "task/v", "kl/l", "kl/a", "kl/v"] if unimodal else [])
      + (["kl/f"] if fused else []))


@pytest.mark.parametrize("variant, count", [("early", 109_371_423), ("late", 109_681_024),
                                            ("complete", 109_835_748)])
def test_parameter_counts_at_the_public_sizes_are_the_papers(variant, count):
  """configs/mib_mosi.py (BERT-base, width 50, hidden 1024, concat) has exactly the
  parameter counts of the MIB paper's Table XI: same layers, same shapes, no extra
  (BERT's pooler, unused by MIB, is not built). Shapes only: nothing is allocated."""
  config = mib_mosi.get_config(variant)
  config.bert.pretrained = False  # bert.random is BERT-base's architecture.
  model = factory.build(config)
  params = jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) == count


def test_fusions():
  rng = np.random.default_rng(0)
  a, b, c = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
  for kind, want in (("sum", a + b + c), ("product", a * b * c)):
    fusion = mib.Fusion(kind, 5)
    assert fusion.init(jax.random.key(0), a, b, c) == {}  # Parameter-free.
    np.testing.assert_allclose(fusion.apply({}, a, b, c), want, rtol=1e-6)
  fusion = mib.Fusion("concat", 5)
  params = fusion.init(jax.random.key(0), a, b, c)
  k = jax.tree.map(np.asarray, params["params"]["concat"])
  want = np.maximum(np.concatenate([a, b, c], -1) @ k["kernel"] + k["bias"], 0.0)
  np.testing.assert_allclose(fusion.apply(params, a, b, c), want, rtol=1e-5, atol=1e-6)
  # TFN: the first layer sees the outer product of (a, 1), (b, 1), (c, 1), which holds
  # a, b, c themselves, their pairwise products and the trimodal ones.
  fusion = mib.Fusion("tensor", 5)
  params = fusion.init(jax.random.key(0), a, b, c)
  assert params["params"]["tensor_1"]["kernel"].shape == (4 ** 3, 5)
  one = np.ones((4, 1), np.float32)
  outer = np.einsum("bi,bj,bk->bijk", *(np.concatenate([x, one], -1) for x in (a, b, c)))
  assert np.allclose(outer[:, :3, 3, 3], a) and np.allclose(outer[:, :3, :3, 3],
                                                              a[:, :, None] * b[:, None, :])
  t = jax.tree.map(np.asarray, params["params"])
  h = np.maximum(outer.reshape(4, -1) @ t["tensor_1"]["kernel"] + t["tensor_1"]["bias"], 0)
  h = np.maximum(h @ t["tensor_2"]["kernel"] + t["tensor_2"]["bias"], 0)
  np.testing.assert_allclose(fusion.apply(params, a, b, c),
                             h @ t["tensor_out"]["kernel"] + t["tensor_out"]["bias"],
                             rtol=1e-4, atol=1e-5)
  _, params, (pred, _) = _abstract(mib_config("late", fusion="tensor"))  # In the model.
  assert pred.shape == (6,) and params["fusion"]["tensor_1"]["kernel"].shape[0] == 17 ** 3


def test_the_bottleneck_samples_around_its_mean_with_its_scale():
  """z = mu + sigma * eps: over many draws, z's mean is mu and its spread sigma; without
  sampling, z is mu; the decoder reads z."""
  rng = np.random.default_rng(0)
  x = np.repeat(rng.normal(size=(1, 4)).astype(np.float32), 4000, axis=0)
  head = mib.Bottleneck(hidden=8, width=3, scale_shift=0.0)  # sigma ~ softplus(.) ~ 0.7.
  params = head.init({"params": jax.random.key(0)}, x, False)
  z, pred, mu, log_sigma = head.apply(params, x, True, rngs={"sample": jax.random.key(1)})
  sigma = np.exp(np.asarray(log_sigma[0]))
  assert sigma.min() > 0.1
  np.testing.assert_allclose(np.mean(z, 0), mu[0], atol=4 * sigma.max() / np.sqrt(4000))
  np.testing.assert_allclose(np.std(z, 0), sigma, rtol=0.06)
  dec = jax.tree.map(np.asarray, params["params"]["decoder"])
  np.testing.assert_allclose(pred, (np.asarray(z) @ dec["kernel"] + dec["bias"])[:, 0],
                             rtol=1e-5, atol=1e-5)
  z0, _, mu0, _ = head.apply(params, x, False)
  np.testing.assert_array_equal(z0, mu0)


def _kl_by_integration(mu, sigma):
  """KL(N(mu, sigma^2) || N(0, 1)) of one dimension, integrating p log(p / q)."""
  def integrand(x):
    log_p = -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    log_q = -0.5 * x ** 2 - 0.5 * np.log(2 * np.pi)
    return np.exp(log_p) * (log_p - log_q)
  value, _ = integrate.quad(integrand, mu - 12 * sigma, mu + 12 * sigma)
  return value


def test_kl_of_a_known_gaussian_against_its_closed_form_and_an_integral():
  mu = np.array([[0.0, 1.0, -2.0], [0.5, 0.0, 3.0]], np.float32)
  sigma = np.array([[1.0, 0.5, 2.0], [0.1, 1.0, 1.5]], np.float32)
  closed = 0.5 * (sigma ** 2 + mu ** 2 - 1.0 - np.log(sigma ** 2))
  integral = np.vectorize(_kl_by_integration)(mu.astype(np.float64), sigma.astype(np.float64))
  np.testing.assert_allclose(closed, integral, rtol=1e-6, atol=1e-9)
  log_sigma = jnp.log(sigma)
  np.testing.assert_allclose(losses.gaussian_kl(mu, log_sigma, "sum"), closed.sum(1).mean(),
                             rtol=1e-6)
  np.testing.assert_allclose(losses.gaussian_kl(mu, log_sigma, "mean"), closed.mean(),
                             rtol=1e-6)
  assert float(losses.gaussian_kl(jnp.zeros((2, 3)), jnp.zeros((2, 3)))) == 0.0
  # The scale network's softplus(x - 5): log sigma stays finite where softplus underflows.
  u = jnp.array([-200.0, -40.0, 0.0, 3.0])
  np.testing.assert_allclose(mib.log_softplus(u)[2:], np.log(np.log1p(np.exp([0.0, 3.0]))),
                             rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(mib.log_softplus(u))))
  assert np.all(np.isfinite(np.asarray(jax.grad(lambda x: mib.log_softplus(x).sum())(u))))


@pytest.fixture(name="mib_exp", scope="module", params=VARIANTS)
def _mib_exp(request, tmp_path_factory):
  """(variant, Experiment) per variant, on one device."""
  config = mib_config(request.param)
  exp = experiment.build(config, tmp_path_factory.mktemp(f"mib_{request.param}"),
                         mesh=sharding.make_mesh(jax.devices()[:1]))
  return request.param, exp


@pytest.fixture(name="mib_run", scope="module")
def _mib_run(tmp_path_factory):
  """The workdir of an uninterrupted C-MIB run (every bottleneck, and diagnostics). The
  trainer is model-agnostic: one variant's run shows it handles MIB's terms and latents."""
  workdir = tmp_path_factory.mktemp("mib_complete")
  train.train_and_evaluate(mib_config("complete"), workdir / "reference")
  return workdir


def _one_step_and_rescore(exp, state, batch):
  """Metrics of a step from `state`, and of the params it made under the same key."""
  first, m0 = exp.train_step(jax.device_put(state, exp.replicated), batch, None)
  after = jax.device_get(first).replace(step=state.step)
  _, m1 = exp.train_step(jax.device_put(after, exp.replicated), batch, None)
  as_floats = lambda m: {k: float(v) for k, v in jax.device_get(m).items()}
  return as_floats(m0), as_floats(m1)


@pytest.mark.parametrize("mib_exp", ["complete"], indirect=True)
def test_one_step_lowers_the_loss_on_a_fixed_batch(mib_exp):
  """Rescored under the same dropout and noise key (the step counter set back), the params
  after one step have a lower total and task losses on the batch they saw; with the
  KL terms alone in the loss (weights are run-time values: the same program), every
  bottleneck's KL falls. C-MIB has every term of the other two variants; their own
  losses and gradients are the public code's (tests/training/test_parity_mib_step.py), so
  the shared step descends for them too, without compiling two more train steps."""
  variant, exp = mib_exp
  state = jax.device_get(exp.initial_state())
  batch = exp.to_device(next(exp.streams.train.iterator(0)))
  m0, m1 = _one_step_and_rescore(exp, state, batch)
  table = "; ".join(f"{k}: {m0[k]:.5f} -> {m1[k]:.5f}" for k in sorted(m0) if "loss" in k)
  assert "club_nll" not in m0  # No estimators to update.
  assert set(m0) >= {f"loss/{t}" for t in mib.loss_terms(exp.model.spec)}
  tasks = [k for k in m0 if k.startswith("loss/task")]  # Fused, and each modality's own.
  assert m1["loss"] < m0["loss"] and all(m1[k] < m0[k] for k in tasks), table
  kl_only = state.replace(hparams={**state.hparams, "w/task": np.float32(0.0),
                                   "w/kl": np.float32(1.0)})
  m0, m1 = _one_step_and_rescore(exp, kl_only, batch)
  kl = [k for k in m0 if k.startswith("loss/kl/")]
  table = "; ".join(f"{k}: {m0[k]:.5f} -> {m1[k]:.5f}" for k in kl)
  assert kl and all(m1[k] < m0[k] for k in kl), table


def test_a_preempted_run_resumes_to_the_same_metrics(mib_run, monkeypatch):
  """SIGTERM at the 4th step of epoch 1 (the run saves mid-epoch and exits 143), then the
  same call again: every epoch's metrics and the results equal the uninterrupted run's."""
  workdir = mib_run
  config = mib_config("complete")
  build, calls = experiment.build, []

  def build_with_a_preemption(*args, **kwargs):
    exp = build(*args, **kwargs)
    step = exp.train_step

    def counting(*a):
      calls.append(1)
      if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGTERM)
      return step(*a)
    exp.train_step = counting
    return exp

  run = workdir / "interrupted"
  monkeypatch.setattr(experiment, "build", build_with_a_preemption)
  with pytest.raises(SystemExit) as stop:
    train.train_and_evaluate(config, run)
  assert stop.value.code == 143 and not (run / "results.json").exists()
  monkeypatch.setattr(experiment, "build", build)
  train.train_and_evaluate(config, run)
  outcome = lambda w: (json.loads((w / "results.json").read_text()),
                       (w / "metrics.jsonl").read_text())
  assert outcome(run) == outcome(workdir / "reference")


def _eval(exp, params, batch):
  return np.asarray(exp.eval_step(params, batch))


def _random_params(model, seed=0):
  """Params of `model`'s shapes drawn on the host, far from any initialiser's values (no
  init program to compile): padding and sampling must not depend on them."""
  shapes = jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)


def test_padding_never_changes_the_prediction(mib_exp):
  """Other values in the padding, and a longer padded length, give the same prediction."""
  variant, exp = mib_exp
  params = _random_params(exp.model)
  s = exp.model.spec
  batch = _batch(s)
  ref = _eval(exp, params, batch)
  rng = np.random.default_rng(1)
  noisy = dict(batch)
  for m in ("audio", "vision"):
    t = batch[m].shape[1]
    pad = np.arange(t)[None, :, None] >= np.asarray(batch[f"{m}_len"])[:, None, None]
    noisy[m] = jnp.where(pad, 50.0 * rng.normal(size=batch[m].shape), batch[m])
  noisy["text_ids"] = jnp.where(batch["text_mask"] > 0, batch["text_ids"], 7)
  np.testing.assert_allclose(_eval(exp, params, noisy), ref, rtol=1e-5, atol=1e-5)
  if variant != "complete":  # The encoders and pooling are shared: one variant compiles it.
    return
  longer = {k: v for k, v in batch.items()}
  for key, extra in (("audio", 5), ("vision", 3), ("text_ids", 4), ("text_mask", 4),
                     ("text_type", 4)):
    widths = ((0, 0), (0, extra)) + ((0, 0),) * (batch[key].ndim - 2)
    longer[key] = jnp.pad(batch[key], widths)
  d = s.dims
  long_model = mib.MIB(dataclasses.replace(s, dims=dataclasses.replace(
      d, text_len=d.text_len + 4, audio_len=d.audio_len + 5, vision_len=d.vision_len + 3)))
  pred = jax.jit(functools.partial(step_lib.eval_step, model=long_model))(params, longer)
  np.testing.assert_allclose(pred, ref, rtol=1e-5, atol=1e-5)


def test_evaluation_is_the_posterior_mean_unless_asked_to_sample(mib_exp):
  variant, exp = mib_exp
  params = _random_params(exp.model)
  batch = _batch(exp.model.spec)
  mean = _eval(exp, params, batch)
  np.testing.assert_array_equal(_eval(exp, params, batch), mean)
  # Training draws from the "sample" stream; evaluation does not (traced, not compiled).
  for deterministic in (False, True):
    jaxpr = jax.make_jaxpr(lambda k, d=deterministic: exp.model.apply(
        {"params": params}, batch, deterministic=d,
        rngs={"dropout": jax.random.key(1), "sample": k}))(jax.random.key(2)).jaxpr
    uses_key = any(jaxpr.invars[0] in eqn.invars for eqn in jaxpr.eqns)
    assert uses_key == (not deterministic)
  if variant != "complete":  # Sampling at evaluation: one variant, with every bottleneck.
    return
  sampling = mib.MIB(dataclasses.replace(exp.model.spec, sample_at_eval=True))
  evaluate = jax.jit(functools.partial(step_lib.eval_step, model=sampling))
  drawn = np.asarray(evaluate(params, batch))
  np.testing.assert_array_equal(np.asarray(evaluate(params, batch)), drawn)  # Repeatable ...
  assert not np.allclose(drawn, mean, atol=1e-6)  # ... but sampled,
  shifted = dict(batch, position=batch["position"] + 100)  # from the batch's positions.
  assert not np.allclose(np.asarray(evaluate(params, shifted)), drawn, atol=1e-6)


def test_a_run_reports_mib_terms_and_latents(mib_run):
  variant, run = "complete", mib_run / "reference"
  results = json.loads((run / "results.json").read_text())
  run_config = ml_collections.ConfigDict(json.loads((run / "config.json").read_text()))
  assert run_config.model.mib.variant == variant
  assert set(results["test_losses"]) == {"loss", *mib.loss_terms(factory.build(run_config).spec)}
  assert set(results["disentanglement"]["knn_mi"]) == {"f_l", "f_a", "f_v"}
  assert set(results["disentanglement"]["latent_variance"]) == {"z_l", "z_a", "z_v", "z_f"}
  assert set(results["disentanglement"]["probe_r2"]) == {"z_l", "z_a", "z_v", "z_f"}
  history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  assert all(set(h["valid_losses"]) == set(results["test_losses"]) for h in history)
  assert (run / "curves.png").stat().st_size > 0 and (run / "latents.png").stat().st_size > 0


def test_public_init_is_the_public_init_weights():
  """model.mib.init=public: every Linear N(0, 0.02) with zero biases (fc1, fc2, the
  attention output, the bottlenecks, the fusion), the attention's input projection
  xavier-uniform over its stacked [3W, W] matrix, each Conv1d torch's U(+-1/sqrt(3 D))."""
  from mird_jax.models import transformer  # pylint: disable=g-import-not-at-top
  w, key = 20, jax.random.key(0)
  x = jnp.ones((2, 7, w))
  layer = transformer.EncoderLayer(width=w, heads=4, attn_dropout=0.0, relu_dropout=0.0,
                                   res_dropout=0.0, initializer="public")
  p = layer.init(key, x, jnp.ones((2, 7), jnp.int32), True)["params"]
  for k in (p["fc1"]["kernel"], p["fc2"]["kernel"], p["attn"]["out"]["kernel"]):
    assert float(jnp.std(k)) == pytest.approx(0.02, rel=0.1)
  assert not np.any(p["fc1"]["bias"]) and not np.any(p["attn"]["out"]["bias"])
  q = np.asarray(p["attn"]["query"]["kernel"])
  bound = np.sqrt(6 / (4 * w))
  assert np.abs(q).max() <= bound and np.abs(q).max() > 0.95 * bound
  conv = transformer.Conv1d(width=8, initializer="public").init(
      key, jnp.ones((1, 5, 30)), jnp.ones((1, 5)))["params"]["conv"]["kernel"]
  assert np.abs(conv).max() <= 1 / np.sqrt(90) and np.abs(conv).max() > 0.9 / np.sqrt(90)
  head = mib.Bottleneck(hidden=64, width=32, scale_shift=5.0, initializer="public").init(
      key, jnp.ones((2, 16)), False)["params"]
  assert all(float(jnp.std(head[n]["kernel"])) == pytest.approx(0.02, rel=0.15)
             for n in ("hidden", "mu", "scale"))
  flax_head = mib.Bottleneck(hidden=64, width=32, scale_shift=5.0).init(
      key, jnp.ones((2, 16)), False)["params"]
  assert float(jnp.std(flax_head["hidden"]["kernel"])) > 0.2  # lecun: 1/sqrt(16).
  model = factory.build(mib_config("late", init="public"))
  shapes = jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))
  bound_model = model.bind({"params": shapes})
  assert all(m.initializer == "public" for m in (
      bound_model.enc_audio, bound_model.ib_l, bound_model.fusion, bound_model.proj_l))
