"""Every config file and variant loads, locks, and carries the keys the design names."""

import importlib
import pathlib
import re

import pytest

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")
VARIANTS = [None, "smoke"]

# Keys design.md and the issues name; a config that loses one breaks the code reading it.
REQUIRED = [
    "seed", "num_seeds",
    "data.name", "data.format", "data.file", "data.unlabeled_file", "data.data_dir",
    "data.manual_dir", "data.metric_dataset", "data.label_min", "data.label_max",
    "data.text_len", "data.audio_len", "data.audio_dim", "data.vision_len",
    "data.vision_dim", "data.batch_size", "data.eval_batch_size", "data.unlabeled_ratio",
    "bert.path", "bert.pretrained", "bert.random.hidden_size", "bert.random.num_layers",
    "model.d_z", "model.fusion", "model.beta_shift", "model.constraint", "model.share_bert",
    "model.text_recon_target", "model.dtype",
    "club.hidden", "club.steps", "club.lr", "club.refresh_latents",
    "loss.task", "loss.combine", "loss.w_task", "loss.w_recon_text", "loss.w_recon_audio",
    "loss.w_recon_vision", "loss.w_mi", "loss.w_orthogonal",
    "optim.groups", "optim.bert_lr", "optim.main_lr", "optim.weight_decay",
    "optim.warmup_frac", "optim.grad_clip",
    "train.epochs", "train.patience", "train.select_metric", "train.select_mode",
]


def _get(config, dotted):
  for part in dotted.split("."):
    config = getattr(config, part)
  return config


def _load(name, variant):
  return importlib.import_module(f"configs.{name}").get_config(variant)


def test_the_three_configs_exist():
  assert {"mosi", "mosei", "demo"} <= set(CONFIG_FILES)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_config_loads_with_every_key(name, variant):
  config = _load(name, variant)
  for key in REQUIRED:
    _get(config, key)  # AttributeError names the missing key.
  assert config.data.batch_size % 8 == 0, "the batch must split over 8 test devices"
  assert config.model.fusion in ("wsa", "wa")
  assert config.model.constraint in ("mim", "orthogonal", "none")
  assert config.model.text_recon_target in ("vocab_logits", "bert_embeddings")
  assert config.loss.task in ("mse", "l1") and config.loss.combine in ("log", "weighted")
  assert config.data.metric_dataset in ("mosi", "mosei", "sims")
  assert config.train.select_mode in ("min", "max")
  labels = [label for _, label in config.optim.groups]
  assert labels == ["bert", "club", "main"] and config.optim.groups[-1][0] == ".*"
  for pattern, _ in config.optim.groups:
    re.compile(pattern)


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_smoke_is_tiny(name):
  full, smoke = _load(name, None), _load(name, "smoke")
  assert smoke.bert.random.hidden_size <= 64 and smoke.bert.random.num_layers <= 2
  assert not smoke.bert.pretrained
  assert smoke.data.audio_len < full.data.audio_len
  assert smoke.train.epochs <= 2


def test_variants_override_the_base_instead_of_copying():
  mosi, mosei = _load("mosi", None).to_dict(), _load("mosei", None).to_dict()
  changed = {(section, key) for section in mosi if isinstance(mosi[section], dict)
             for key in mosi[section] if mosi[section][key] != mosei[section][key]}
  assert changed == {("data", "name"), ("data", "metric_dataset"), ("data", "audio_len"),
                     ("data", "audio_dim"), ("data", "vision_dim"),
                     ("train", "epochs"), ("train", "patience")}
  demo = _load("demo", None)
  assert demo.data.name == "synthetic_mosi" and demo.data.synthetic.n_train > 0


def test_unknown_variant_is_named():
  with pytest.raises(ValueError, match="'tiny'.*configs/mosei.py"):
    _load("mosei", "tiny")
