"""The MIRD model: shapes (smoke and paper sizes), padding invariance, variants, param groups."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mosi
from mird_jax.models import club
from mird_jax.models import factory
from mird_jax.models import mird as model_lib
from mird_jax.tools import describe
from mird_jax.training import param_groups


def _build(config):
  mdl = factory.build(config)
  return mdl, factory.init_params(mdl, jax.random.key(0))


def _batch(spec, b, seed=0):
  k = jax.random.split(jax.random.key(seed), 6)
  d = spec.dims
  t_len = jax.random.randint(k[0], (b,), 3, d.text_len + 1)
  ids = jax.random.randint(k[1], (b, d.text_len), 104, spec.bert.vocab_size)
  mask = (jnp.arange(d.text_len)[None, :] < t_len[:, None]).astype(jnp.int32)
  a_len = jax.random.randint(k[2], (b,), 1, d.audio_len + 1)
  v_len = jax.random.randint(k[3], (b,), 1, d.vision_len + 1)
  pad = lambda x, n: jnp.where(jnp.arange(x.shape[1])[None, :, None] < n[:, None, None], x, 0)
  return {"text_ids": ids * mask, "text_mask": mask, "text_type": jnp.zeros_like(ids),
          "audio": pad(jax.random.normal(k[4], (b, d.audio_len, d.audio_dim)), a_len),
          "audio_len": a_len,
          "vision": pad(jax.random.normal(k[5], (b, d.vision_len, d.vision_dim)), v_len),
          "vision_len": v_len}


@pytest.fixture(name="smoke", scope="module")
def _smoke():
  return _build(mosi.get_config("smoke"))


def test_shapes_at_smoke_size(smoke):
  mdl, params = smoke
  s = mdl.spec
  pred, aux = jax.eval_shape(functools.partial(mdl.apply, deterministic=False),
                             {"params": params}, _batch(s, 4),
                             rngs={"dropout": jax.random.key(1)})
  assert pred.shape == (4,) and pred.dtype == jnp.float32
  for z in ("z_s", "z_l", "z_a", "z_v"):
    assert aux[z].shape == (4, s.d_z)
  assert aux["recon_text"].shape == (4, s.dims.text_len, s.bert.vocab_size)
  assert aux["recon_audio"].shape == (4, s.dims.audio_len, s.dims.audio_dim)
  assert aux["recon_vision"].shape == (4, s.dims.vision_len, s.dims.vision_dim)
  assert aux["wsa_audio"].shape == (4, s.dims.text_len, s.dims.audio_len)
  stats = jax.eval_shape(functools.partial(mdl.apply, method=model_lib.MIRD.club_stats),
                         {"params": params}, aux)
  assert set(stats) == set(club.PAIRS)
  for mu, logvar in stats.values():
    assert mu.shape == logvar.shape == (4, s.d_z)


def test_shapes_at_paper_size_with_eval_shape():
  config = mosi.get_config()
  config.bert.pretrained = False  # BERT-base shapes, without the checkpoint.
  mdl = factory.build(config)
  params = jax.eval_shape(lambda: factory.init_params(mdl, jax.random.key(0)))
  assert params["bert_l"]["word_embeddings"]["embedding"].shape == (30522, 768)
  assert len([k for k in params["bert_s"] if k.startswith("layers_")]) == 12
  batch = jax.eval_shape(lambda: factory.dummy_batch(mdl.spec, 144))
  pred, aux = jax.eval_shape(functools.partial(mdl.apply, deterministic=False),
                             {"params": params}, batch, rngs={"dropout": jax.random.key(0)})
  assert pred.shape == (144,) and aux["z_s"].shape == (144, 64)
  assert aux["recon_text"].shape == (144, 50, 30522)
  assert aux["recon_audio"].shape == (144, 375, 5)
  assert aux["recon_vision"].shape == (144, 500, 20)
  groups = param_groups.counts(params, config.optim.groups)
  assert 218_000_000 < groups["bert"] < 220_000_000  # Two BERT-base encoders + poolers.
  assert groups["club"] == 6 * 2 * (64 * 16 + 16 + 16 * 64 + 64)


def test_padding_never_matters(smoke):
  mdl, params = smoke
  s = mdl.spec
  batch = _batch(s, 6, seed=3)
  apply = jax.jit(lambda b: mdl.apply({"params": params}, b, deterministic=True,
                                      reconstruct=False))
  pred, aux = apply(batch)
  k = jax.random.split(jax.random.key(9), 3)
  garbage = dict(batch)
  text_pad = batch["text_mask"] == 0
  garbage["text_ids"] = jnp.where(text_pad, jax.random.randint(k[0], text_pad.shape, 0, 500),
                                  batch["text_ids"])
  garbage["text_type"] = jnp.where(text_pad, 1, batch["text_type"])
  for m, key in (("audio", k[1]), ("vision", k[2])):
    pad = jnp.arange(batch[m].shape[1])[None, :, None] >= batch[f"{m}_len"][:, None, None]
    garbage[m] = jnp.where(pad, 100 * jax.random.normal(key, batch[m].shape), batch[m])
  pred2, aux2 = apply(garbage)
  np.testing.assert_allclose(pred2, pred, atol=1e-5)
  for z in ("z_s", "z_l", "z_a", "z_v"):
    np.testing.assert_allclose(aux2[z], aux[z], atol=1e-5, err_msg=z)
  # And the valid content does matter, for each modality.
  for m in ("audio", "vision"):
    changed = dict(batch, **{m: batch[m] * 2})
    assert np.abs(np.asarray(apply(changed)[1][f"z_{m[0]}"] - aux[f"z_{m[0]}"])).max() > 1e-4


def test_constraint_and_recon_variants():
  config = mosi.get_config("smoke")
  config.model.constraint = "orthogonal"
  config.model.text_recon_target = "bert_embeddings"
  config.loss.w_recon_audio = 0.0  # Weight 0 removes the decoder's compute.
  # Monitored estimators exist under any constraint; without the monitor, only under mim.
  monitored = factory.build(config)
  params = jax.eval_shape(lambda: factory.init_params(monitored, jax.random.key(0)))
  assert sum(k.startswith("club_") for k in params) == 6
  config.club.monitor = False
  mdl = factory.build(config)
  params = jax.eval_shape(lambda: factory.init_params(mdl, jax.random.key(0)))
  assert not any(k.startswith("club_") for k in params) and "dec_audio" not in params
  _, aux = jax.eval_shape(mdl.apply, {"params": params}, _batch(mdl.spec, 2))
  h = mdl.spec.bert.hidden_size
  assert aux["recon_text"].shape[-1] == h and aux["text_target"].shape == aux["recon_text"].shape
  assert "recon_audio" not in aux and "recon_vision" in aux
  config.model.constraint = "nope"
  with pytest.raises(ValueError, match="model.constraint='nope'"):
    factory.build(config)


def test_decoders_are_as_wide_as_their_latent(smoke):
  """As in the public code: the LSTM takes [z_s; z_m] itself as its first input."""
  mdl, params = smoke
  width = 2 * mdl.spec.d_z
  for name in ("dec_text", "dec_audio", "dec_vision"):
    assert set(params[name]) == {"lstm", "output"}, name
    assert params[name]["output"]["kernel"].shape[0] == width
    assert params[name]["lstm"]["cell"]["hi"]["kernel"].shape == (width, width)


def test_pytorch_init_scheme_reaches_every_layer_outside_bert_and_wsa():
  config = mosi.get_config("smoke")
  config.model.init_scheme = "pytorch"
  mdl = factory.build(config)
  shapes = jax.eval_shape(lambda: factory.init_params(mdl, jax.random.key(0)))
  bound = mdl.bind({"params": shapes})
  key = jax.random.key(3)
  d_z, bert_h = mdl.spec.d_z, mdl.spec.bert.hidden_size
  for layer, fan_in in ((bound.proj_l, bert_h), (bound.proj_s, bert_h),
                        (bound.reg_hidden, 4 * d_z), (bound.reg_out, 16)):
    for init in (layer.kernel_init, layer.bias_init):
      x = np.asarray(init(key, (fan_in, 64)))
      limit = 1 / np.sqrt(fan_in)
      assert np.abs(x).max() <= limit and np.abs(x).max() > 0.9 * limit
  assert mdl.spec.regressor_hidden == 16
  for module in (bound.enc_audio, bound.enc_vision, bound.dec_text, *bound.club.values()):
    assert module.init_scheme == "pytorch", module


@pytest.mark.parametrize("scheme", ["flax", "pytorch"])
def test_init_schemes_of_dense_and_lstm_layers(scheme):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from mird_jax.models import initializers  # pylint: disable=g-import-not-at-top
  from mird_jax.models import lstm  # pylint: disable=g-import-not-at-top
  x = jnp.ones((3, 7, 20))
  enc = lstm.LSTMEncoder(hidden=100, d_z=50, init_scheme=scheme)
  p = jax.jit(enc.init)(jax.random.key(0), x, jnp.array([7, 3, 1]))["params"]
  lstm = [np.asarray(v) for v in jax.tree.leaves(p["OptimizedLSTMCell_0"])]
  proj_w, proj_b = np.asarray(p["proj"]["kernel"]), np.asarray(p["proj"]["bias"])
  if scheme == "pytorch":  # U(-1/sqrt(h), 1/sqrt(h)) everywhere, biases included.
    assert all(np.abs(v).max() <= 0.1 for v in lstm)
    assert all(v.std() == pytest.approx(0.1 / np.sqrt(3), rel=0.15) for v in lstm if v.size > 99)
    assert np.abs(proj_b).max() > 0.05 and np.abs(proj_w).max() <= 0.1
  else:  # Flax: zero biases, lecun-normal kernels (std 1/sqrt(fan_in)).
    assert not np.any(proj_b) and proj_w.std() == pytest.approx(0.1, rel=0.15)
  with pytest.raises(ValueError, match=r"scheme 'torch'; expected one of \('flax', 'pytorch'\)"):
    initializers.dense(4, 4, "torch", jnp.float32)
  assert isinstance(initializers.dense(4, 4, scheme, jnp.float32), nn.Dense)


def test_every_parameter_lands_in_a_group(smoke):
  _, params = smoke
  rules = mosi.get_config().optim.groups
  labels = flax.traverse_util.flatten_dict(param_groups.label_tree(params, rules), sep="/")
  assert {v for k, v in labels.items() if k.startswith(("bert_l/", "bert_s/"))} == {"bert"}
  assert {v for k, v in labels.items() if k.startswith("club_")} == {"club"}
  assert labels["fusion/LayerNorm/scale"] == "main" and labels["dec_text/output/kernel"] == "main"
  with pytest.raises(ValueError, match=r"match no rule of optim.groups.*'reg_out/bias'"):
    param_groups.label_tree({"reg_out": {"bias": np.zeros(1)}}, [(r"bert.*", "bert")])


def test_describe_reports_groups_and_flops():
  text = describe.describe(mosi.get_config("smoke"))
  assert "group bert:" in text and "group club:" in text and "module dec_text:" in text
  assert "forward FLOPs at batch 8" in text
