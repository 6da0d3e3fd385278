"""`--mode=eval_public`: the authors' trained weights (an .npz of their state_dict) scored on
our data with our metrics, through the same converter the parity tests pin; a state that
does not fit stops in one line naming the file and the tensor."""

import json

import numpy as np
import pytest

from data_pipelines import checks
from data_pipelines import synthetic
from mird_jax import main
import parity


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """The MIRD parity fixture's config on synthetic MMSA files of its sizes (one device)."""
  d = parity.fixture("mird")
  s = parity.sizes(d)
  raw = tmp_path_factory.mktemp("raw")
  synthetic.write(synthetic.SyntheticSpec(
      n_train=6, n_valid=3, n_test=9, n_unlabeled=3, text_len=s["text_len"],
      audio_len=s["audio_len"], audio_dim=s["audio_dim"], vision_len=s["vision_len"],
      vision_dim=s["vision_dim"], vocab_size=s["vocab"]), raw)
  config = parity.mird_config(d)
  config.data.manual_dir = str(raw)
  config.bert.path = ""  # The files' own token ids.
  config.train.num_devices = 1
  config.data.eval_batch_size = 4
  state = tmp_path_factory.mktemp("state") / "state.npz"
  np.savez(state, **parity.state(d, "w0"))
  return config, state


def test_eval_public_prints_the_metric_suite_of_the_authors_weights(setup, tmp_path, capsys):
  config, state = setup
  main.run(config, str(tmp_path / "w"), "eval_public", input_path=str(state), split="test")
  printed = capsys.readouterr().out  # TFDS announces the dataset it builds first.
  out = json.loads(printed[printed.index("{\n"):])
  assert out["split"] == "test" and out["weights"] == str(state)
  assert {"MAE", "Corr", "MAG/Acc2"} <= set(out["metrics"])
  assert np.isfinite(out["metrics"]["MAE"])


def test_a_state_that_does_not_fit_is_named_in_one_line(setup, tmp_path):
  config, state = setup
  broken = dict(np.load(state))
  del broken["zy_to_y_fc2.weight"]
  bad = tmp_path / "bad.npz"
  np.savez(bad, **broken)
  with pytest.raises(checks.DataError) as e:  # run.py prints it as one line.
    main.run(config, str(tmp_path / "w"), "eval_public", input_path=str(bad), split="test")
  assert "\n" not in str(e.value) and str(bad) in str(e.value)
  assert "missing zy_to_y_fc2.weight (for reg_out/kernel (8, 1))" in str(e.value)
  assert not (tmp_path / "w").exists()  # Stopped before any data was read or written.
  with pytest.raises(main.UsageError, match="needs --input STATE.npz.*is not a file"):
    main.run(config, str(tmp_path / "w"), "eval_public", input_path=str(tmp_path / "no.npz"))
  np.savez(tmp_path / "pickled.npz", x=np.array([{"a": 1}], dtype=object))
  with pytest.raises(checks.DataError, match=r"pickled.npz: not an .npz of numpy arrays"):
    main.run(config, str(tmp_path / "w"), "eval_public",
             input_path=str(tmp_path / "pickled.npz"))
