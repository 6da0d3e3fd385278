"""model.av_encoder: either family with either audio/vision encoder. A family's own encoder
keeps the parameters it always had; a swapped one is the other family's encoder, the same
layers with the same shapes, mapped to the family's own latent size, and it ignores the
padding as the original does."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mib_mosi
from mird_jax.models import av_encoder
from mird_jax.models import factory
from mird_jax.models import lstm
from mird_jax.models import transformer
from smoke import smoke_config


def _config(family: str, encoder: str | None = None):
  config = smoke_config()
  if family == "mib":
    mib_mosi.apply_mib(config, "complete")
    mib_mosi.apply_mib_smoke(config)
  if encoder:
    config.model.av_encoder = encoder
  return config


def _encoder_shapes(config):
  """(the bound model, {path: shape} of enc_audio's params): shapes only."""
  model = factory.build(config)
  params = jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))
  flat = flax.traverse_util.flatten_dict(params["enc_audio"], sep="/")
  return model.bind({"params": params}), {k: v.shape for k, v in flat.items()}


def test_each_family_keeps_its_own_encoder_by_default():
  mird_model, mird_enc = _encoder_shapes(_config("mird"))
  mib_model, mib_enc = _encoder_shapes(_config("mib"))
  assert type(mird_model.enc_audio) is lstm.LSTMEncoder
  assert type(mib_model.enc_audio) is transformer.TransformerEncoder
  assert mird_enc["proj/kernel"] == (16, 16)  # lstm_hidden -> d_z
  assert "layer_0/fc1/kernel" in mib_enc and "ln_final/scale" in mib_enc


def test_a_swapped_encoder_is_the_other_familys_encoder():
  _, mird_own = _encoder_shapes(_config("mird"))
  _, mib_own = _encoder_shapes(_config("mib"))
  mird_tf_model, mird_tf = _encoder_shapes(_config("mird", "transformer"))
  mib_lstm_model, mib_lstm = _encoder_shapes(_config("mib", "lstm"))
  # MIRD with MIB's Transformer (model.mib's sizes), then a Dense to MIRD's d_z.
  assert type(mird_tf_model.enc_audio) is av_encoder.TransformerReadout
  mib_width = mib_own["ln_final/scale"][0]
  smoke_mird = _config("mird").model.mib  # The Transformer's sizes: model.mib's keys.
  assert mird_tf["transformer/ln_final/scale"] == (smoke_mird.width,)
  assert mird_tf["proj_out/kernel"] == (smoke_mird.width, 16)
  # MIB with MIRD's LSTM (model.lstm_hidden), then a Dense to MIB's width.
  assert type(mib_lstm_model.enc_audio) is lstm.LSTMEncoder
  lstm_layers = {k: v for k, v in mird_own.items() if not k.startswith("proj/")}
  assert {k: v for k, v in mib_lstm.items() if not k.startswith("proj/")} == lstm_layers
  assert mib_lstm["proj/kernel"] == (16, mib_width)


@pytest.mark.parametrize("kind", av_encoder.KINDS)
def test_encoders_ignore_padding_and_learn(kind):
  spec = factory.av_encoder_spec(_config("mib" if kind == "transformer" else "mird", kind))
  spec = spec.__class__(**{**spec.__dict__, "attn_dropout": 0.0, "relu_dropout": 0.0,
                           "res_dropout": 0.0, "embed_dropout": 0.0})
  enc = av_encoder.make(spec, 6, jnp.float32, own="lstm")  # Never its own for transformer.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 9, 4)).astype(np.float32)
  lengths = np.array([9, 4, 1], np.int32)
  valid = np.arange(9)[None, :, None] < lengths[:, None, None]
  x = np.where(valid, x, 0.0).astype(np.float32)
  params = enc.init(jax.random.key(0), x, lengths)["params"]
  out = enc.apply({"params": params}, x, lengths)
  assert out.shape == (3, 6)
  noisy = np.where(valid, x, 100.0).astype(np.float32)  # Garbage in the padding.
  np.testing.assert_allclose(enc.apply({"params": params}, noisy, lengths), out, atol=1e-5)
  # A few gradient steps on a regression target lower its loss: every layer is wired in.
  target = jnp.asarray(rng.normal(size=(3, 6)).astype(np.float32))
  loss = lambda p: jnp.mean((enc.apply({"params": p}, x, lengths) - target) ** 2)
  step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - 0.05 * g, p, jax.grad(loss)(p)))
  start = float(loss(params))
  for _ in range(20):
    params = step(params)
  assert float(loss(params)) < 0.8 * start
