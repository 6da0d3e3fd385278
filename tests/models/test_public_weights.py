"""The public-weights converter: strict names and shapes, one-line errors, and the layouts
it maps (torch's Linear transposed, LSTM gates split or kept, estimators optional)."""

import jax
import numpy as np
import pytest

from mird_jax.models import factory
from mird_jax.models import public_weights
import parity


@pytest.fixture(scope="module")
def fixture():
  d = parity.fixture("mird")
  model = factory.build(parity.mird_config(d))
  return parity.state(d, "w0"), parity.template(model), model


def test_every_public_tensor_lands_once_transposed_where_torch_stores_out_by_in(fixture):
  state, template, _ = fixture
  flat = parity.flat(public_weights.mird(template, state))
  np.testing.assert_array_equal(flat["reg_hidden/kernel"], state["zy_to_y_fc1.weight"].T)
  np.testing.assert_array_equal(flat["fusion/audio_key/bias"],
                                state["mult_encoder.model.WSA.W_a.bias"])
  np.testing.assert_array_equal(flat["bert_s/layers_0/intermediate/kernel"],
                                state["mult_encoder.model.encoder.layer.0.intermediate.dense"
                                      ".weight"].T)
  np.testing.assert_array_equal(flat["club_s_a/logvar_out/kernel"],
                                state["club_s_a.p_logvar.2.weight"].T)
  np.testing.assert_array_equal(flat["enc_audio/TorchLSTMCell_0/hh/kernel"],
                                state["encoder_a.lstm.weight_hh"].T)


def test_flax_cell_gets_each_gate_and_the_summed_bias():
  h, d_in = 2, 3
  rng = np.random.default_rng(0)
  w_ih, w_hh = rng.normal(size=(4 * h, d_in)), rng.normal(size=(4 * h, h))
  b_ih, b_hh = rng.normal(size=4 * h), rng.normal(size=4 * h)
  state = {"encoder_a.lstm.weight_ih": w_ih, "encoder_a.lstm.weight_hh": w_hh,
           "encoder_a.lstm.bias_ih": b_ih, "encoder_a.lstm.bias_hh": b_hh}
  template = {"enc_audio": {"OptimizedLSTMCell_0": {
      f"{src}{g}": ({"kernel": np.zeros((d_in if src == "i" else h, h), np.float32)} |
                    ({"bias": np.zeros(h, np.float32)} if src == "h" else {}))
      for src in "ih" for g in "ifgo"}}}
  flat = parity.flat(public_weights.convert(template, state, public_weights.mird_source, "s"))
  cell = "enc_audio/OptimizedLSTMCell_0"
  np.testing.assert_allclose(flat[f"{cell}/ig/kernel"], w_ih[2 * h:3 * h].T)  # i, f, g, o
  np.testing.assert_allclose(flat[f"{cell}/ho/kernel"], w_hh[3 * h:].T)
  np.testing.assert_allclose(flat[f"{cell}/hf/bias"], b_ih[h:2 * h] + b_hh[h:2 * h])


def test_missing_unused_and_misshapen_tensors_are_named_in_one_line(fixture):
  state, template, _ = fixture
  bad = dict(state)
  del bad["zy_to_y_fc2.bias"]
  bad["zy_to_y_fc3.weight"] = np.zeros(3)
  bad["encoder_a.fc1.weight"] = np.zeros((2, 2))
  with pytest.raises(ValueError) as e:
    public_weights.mird(template, bad, label="state.npz")
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith("state.npz does not fit the model (3 problems)")
  assert "missing zy_to_y_fc2.bias (for reg_out/bias (1,))" in msg
  assert "unused zy_to_y_fc3.weight" in msg
  assert "encoder_a.fc1.weight: shape (2, 2), expected (8, 8) for enc_audio/proj/kernel" in msg


def test_estimators_are_optional_and_read_state_refuses_pickles(fixture, tmp_path):
  state, template, _ = fixture
  model_only = {k: v for k, v in state.items() if not k.startswith("club_")}
  out = public_weights.mird(template, model_only)
  assert isinstance(out["club_s_v"]["mu_out"]["kernel"], jax.ShapeDtypeStruct)  # Kept.
  np.savez(tmp_path / "state.npz", **model_only)
  assert public_weights.read_state(tmp_path / "state.npz").keys() == model_only.keys()
  np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))
  with pytest.raises(ValueError, match="pickle"):
    public_weights.read_state(tmp_path / "pickled.npz")
