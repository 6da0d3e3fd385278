"""MIRD's modules against the public PyTorch code's outputs (tests/data/parity/mird.npz,
written by tests/data/parity/make_mird.py from qianfan1996/MIRD): the public weights go
through models/public_weights.py, every dropout is off and every input full length
(padding is ours to mask, tested apart). Forwards agree to 1e-5."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mird_jax.models import club
from mird_jax.models import factory
from mird_jax.models import lstm
from mird_jax.models import public_weights
from mird_jax.models import wsa
from mird_jax.training import losses
import parity

FORWARD_TOL = 1e-5


@pytest.fixture(scope="module")
def public():
  d = parity.fixture("mird")
  model = factory.build(parity.mird_config(d))
  params = public_weights.mird(parity.template(model), parity.state(d, "w0"))
  return d, model, params


@functools.lru_cache(maxsize=1)
def _forward(model):
  return jax.jit(lambda p, b: model.apply({"params": p}, b, deterministic=True))


def test_the_fixture_records_its_source():
  d = parity.fixture("mird")
  assert len(str(d["meta/commit"])) == 40 and "make_mird.py" in str(d["meta/command"])
  assert str(d["meta/transformers"]) == "3.0.2"  # The version the public code pins.


def test_the_whole_forward_matches_every_latent_reconstruction_and_prediction(public):
  d, model, params = public
  pred, aux = _forward(model)(params, parity.joint(d, 0))
  for name in ("z_s", "z_l", "z_a", "z_v", "recon_text", "recon_audio", "recon_vision"):
    parity.assert_close(aux[name], d[f"forward/{name}"], FORWARD_TOL, name)
  parity.assert_close(pred, d["forward/pred"][:, 0], FORWARD_TOL, "prediction")
  # The fixture exercises sparsemax's sparsity: most frames get exactly zero weight.
  assert 0.3 < float(jnp.mean(aux["wsa_audio"] == 0)) < 0.95


def test_wsa_and_wa_fusion_match_on_the_public_embeddings(public):
  d, model, params = public
  j = parity.joint(d, 0)
  e = _embed(model, params, j)
  parity.assert_close(e, d["wsa/embeddings"], FORWARD_TOL, "BERT embeddings")
  args = (jnp.asarray(d["wsa/embeddings"]), j["audio"], j["audio_len"], j["vision"],
          j["vision_len"])
  spec = model.spec
  fused, _ = wsa.WordAlignedFusion(hidden=spec.bert.hidden_size, fusion="wsa").apply(
      {"params": params["fusion"]}, *args, deterministic=True)
  parity.assert_close(fused, d["wsa/out"], FORWARD_TOL, "WSA")
  wa_state = {f"mult_encoder.model.WA.{k[3:]}": v for k, v in d.items() if k.startswith("wa/")
              and k != "wa/out"}
  wa_params = public_weights.convert(
      {"fusion": params["fusion"]}, wa_state,
      lambda p: public_weights.mird_source(p, "wa"), "WA state")["fusion"]
  fused, _ = wsa.WordAlignedFusion(hidden=spec.bert.hidden_size, fusion="wa").apply(
      {"params": wa_params}, *args, deterministic=True)
  parity.assert_close(fused, d["wa/out"], FORWARD_TOL, "WA")


def _embed(model, params, j):
  return model.apply({"params": params}, j["text_ids"], j["text_type"], True,
                     method=lambda m, ids, types, det: m.bert_s.embed(ids, types, det))


def test_each_lstm_encoder_and_decoder_matches(public):
  d, model, params = public
  j, spec = parity.joint(d, 0), model.spec
  for m, z in (("audio", "z_a"), ("vision", "z_v")):
    enc = lstm.LSTMEncoder(hidden=spec.lstm_hidden, d_z=spec.d_z, init_scheme="pytorch",
                           cell="torch")
    out = enc.apply({"params": params[f"enc_{m}"]}, j[m], j[f"{m}_len"])
    parity.assert_close(out, d[f"forward/{z}"], FORWARD_TOL, f"{m} encoder")
  for m, z, width in (("text", "z_l", spec.bert.vocab_size), ("audio", "z_a", spec.dims.audio_dim),
                      ("vision", "z_v", spec.dims.vision_dim)):
    latent = np.concatenate([d["forward/z_s"], d[f"forward/{z}"]], -1)
    length = {"text": spec.dims.text_len, "audio": spec.dims.audio_len,
              "vision": spec.dims.vision_len}[m]
    dec = lstm.LSTMDecoder(out=width, init_scheme="pytorch", cell="torch")
    out = dec.apply({"params": params[f"dec_{m}"]}, latent, length)
    parity.assert_close(out, d[f"forward/recon_{m}"], FORWARD_TOL, f"{m} decoder")


def test_each_club_network_matches_mu_logvar_loglik_and_bound(public):
  d, model, params = public
  z = {k: d[f"forward/z_{k}"] for k in "slav"}
  for x, y in club.PAIRS:
    pair = f"{x}_{y}"
    mu, logvar = club.Club(hidden=model.spec.club_hidden, d_y=model.spec.d_z,
                           init_scheme="pytorch").apply({"params": params[f"club_{pair}"]},
                                                        z[x])
    parity.assert_close(mu, d[f"club/{pair}/mu"], FORWARD_TOL, f"{pair} mu")
    parity.assert_close(logvar, d[f"club/{pair}/logvar"], FORWARD_TOL, f"{pair} logvar")
    parity.assert_close(losses.club_log_likelihood(mu, logvar, z[y]), d[f"club/{pair}/loglik"],
                        FORWARD_TOL, f"{pair} log-likelihood")
    parity.assert_close(losses.club_upper_bound(mu, logvar, z[y]), d[f"club/{pair}/bound"],
                        FORWARD_TOL, f"{pair} bound")


def test_the_public_wsa_bert_starts_random_and_the_preset_does_too():
  d = parity.fixture("mird")
  # Settled by the generator: loading a BERT checkpoint through the public class fills the
  # language BERT (its own from_pretrained) and leaves every WSA-BERT weight at its init.
  assert bool(d["meta/bert_l_is_checkpoint"]) and not bool(d["meta/bert_s_is_checkpoint"])
  # The same from a checkpoint in bert-base-uncased's own layout (BertForPreTraining).
  assert not bool(d["meta/bert_s_is_pretraining_checkpoint"])
  missing = str(d["meta/missing_keys"]).split("\n")
  assert any(k.startswith("mult_encoder.model.encoder.layer.") for k in missing)
  from configs import public  # pylint: disable=g-import-not-at-top
  assert public.get_config("mird").bert.pretrained_agnostic is False
