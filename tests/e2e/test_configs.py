"""Every config file and variant loads, locks, and carries the keys the design names."""

import importlib
import pathlib
import re

import pytest

from configs import ablations
from mird_jax import config_check

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")
VARIANTS = [None, "smoke"]

# Keys docs/design.md and the issues name; a config that loses one breaks the code reading it.
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
    "optim.warmup_frac", "optim.grad_clip", "optim.schedule", "club.monitor",
    "train.epochs", "train.patience", "train.select_metric", "train.select_mode",
    "data.factors_file", "diagnostics.enabled", "diagnostics.knn_k", "diagnostics.knn_dims",
    "diagnostics.tsne", "model.name", "model.mib.variant", "model.mib.fusion",
    "model.mib.width", "model.mib.bottleneck", "model.mib.hidden", "model.mib.beta",
    "model.mib.kl_reduce", "model.mib.sample_at_eval",
]


def _get(config, dotted):
  for part in dotted.split("."):
    config = getattr(config, part)
  return config


def _load(name, variant):
  return importlib.import_module(f"configs.{name}").get_config(variant)


def test_the_configs_exist():
  assert {"mosi", "mosei", "demo", "mosi_paper", "mosei_paper"} <= set(CONFIG_FILES)


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
  groups = {"mird": ["bert", "club", "main"], "mib": ["bert", "main"],
            "text": ["bert", "main"]}[config.model.name]
  assert labels == groups and config.optim.groups[-1][0] == ".*"
  config_check.validate(config)
  for pattern, _ in config.optim.groups:
    re.compile(pattern)


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_smoke_is_tiny(name):
  full, smoke = _load(name, None), _load(name, "smoke")
  assert smoke.bert.random.hidden_size <= 64 and smoke.bert.random.num_layers <= 2
  assert not smoke.bert.pretrained
  if name == "real":  # Utterance-level features: one frame in either.
    assert smoke.data.text_len < full.data.text_len
  else:
    assert smoke.data.audio_len < full.data.audio_len
  assert smoke.train.epochs <= 2


@pytest.mark.parametrize("dataset", ["text", "utterance", "utterance_novision"])
def test_every_real_data_config_validates_and_reads_the_public_files(dataset):
  from configs import real  # pylint: disable=g-import-not-at-top
  for model in real.MODELS:
    config = real.get_config(f"{dataset},{model}")
    config_check.validate(config)
    d = config.data
    assert d.format == "label_csv" and d.file == "label.csv" and d.standardize
    assert config.bert.path == "all-MiniLM-L6-v2" and config.bert.pretrained
    assert (d.split == "standard") == (dataset == "text")  # Only the text-only set.
    assert bool(d.audio_csd) == (dataset != "text")
    assert bool(d.vision_csd) == (dataset == "utterance")
    assert config.model.name == {"mird": "mird", "text": "text"}.get(model, "mib")
    paper = real.get_config(f"{dataset},{model},paper")
    assert paper.optim.bert_lr == paper.optim.main_lr == 1e-5 and paper.train.epochs == 100
  with pytest.raises(ValueError, match="DATA,MODEL"):
    real.get_config("utterance,bert")


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


def _smoke():
  return _load("mosi", "smoke")


@pytest.mark.parametrize("key", sorted(config_check.CHOICES))
def test_every_choice_key_rejects_an_unknown_value_in_one_line(key):
  config = _smoke()
  config_check.validate(config)
  parent, _, leaf = key.rpartition(".")
  setattr(_get(config, parent), leaf, "nope")
  with pytest.raises(config_check.ConfigError) as e:
    config_check.validate(config)
  message = str(e.value)
  assert "\n" not in message and message.startswith(f"{key}='nope' is not allowed")
  for allowed in config_check.CHOICES[key]:
    assert repr(allowed) in message


@pytest.mark.parametrize("key, value, message", [
    ("train.select_metric", "Acc", "train.select_metric='Acc' is not allowed; expected one of "
                                   "'Has0_acc_2'"),
    ("train.select_mode", "lowest", "train.select_mode='lowest' is not allowed; expected one "
                                    "of 'min', 'max'"),
    ("data.batch_size", 0, "data.batch_size=0 must be > 0"),
    ("club.steps", -1, "club.steps=-1 must be >= 0"),
    ("optim.warmup_frac", 1.5, r"optim.warmup_frac=1.5 must be in \[0, 1\]"),
    ("data.label_fraction", 0.0, r"data.label_fraction=0.0 must be in \(0, 1\]"),
    ("optim.accumulate_steps", 2, r"loss.scale_free=True standardises over the whole batch, "
                                  r"which optim.accumulate_steps=2 cannot split"),
    ("data.text_buckets", (32, 16), r"data.text_buckets=\(32, 16\) must be a tuple of "
                                    r"ascending positive integers"),
    ("data.audio_buckets", (0,), r"data.audio_buckets=\(0,\) must be a tuple of ascending"),
    ("data.group_by_length", True, r"data.group_by_length=True groups batches by length "
                                   r"bucket, but data.text_buckets, data.audio_buckets, "
                                   r"data.vision_buckets are all empty"),
    ("data.group_chunk", -1, r"data.group_chunk=-1 must be >= 0"),
])
def test_bad_values_are_named(key, value, message):
  config = _smoke()
  config.loss.scale_free = key == "optim.accumulate_steps"
  parent, _, leaf = key.rpartition(".")
  setattr(_get(config, parent), leaf, value)
  with pytest.raises(config_check.ConfigError, match=message):
    config_check.validate(config)


def test_the_last_step_readout_refuses_length_buckets():
  """MIB's public readout reads the last padded step, which cutting a batch moves."""
  config = _load("mib_mosi", "complete")
  config.model.mib.readout = "last"
  assert config.data.text_buckets
  with pytest.raises(config_check.ConfigError,
                     match=r"model.mib.readout='last' reads the last padded step, .* set "
                           r"data.text_buckets=\(\)"):
    config_check.validate(config)
  config.data.text_buckets, config.data.group_by_length = (), False
  config_check.validate(config)
  mird = _load("mosi", None)
  mird.model.mib.readout = "last"  # Unread by MIRD's LSTM encoders: buckets stay allowed.
  config_check.validate(mird)
  mird.model.av_encoder = "transformer"
  with pytest.raises(config_check.ConfigError, match="model.mib.readout='last'"):
    config_check.validate(mird)


def test_unlabelled_ratio_without_a_pool_stops_with_both_ways_out():
  config = _load("mosi", None)
  config_check.validate(config)  # The real-data base trains without a pool ...
  assert config.data.unlabeled_ratio == 0 and config.data.unlabeled_file == ""
  config.data.unlabeled_ratio = 2.0  # ... and asking for unlabelled data needs one.
  with pytest.raises(config_check.ConfigError,
                     match=r"data.unlabeled_ratio=2.0 asks for unlabelled examples but no pool "
                           r"is configured: name one with --config.data.unlabeled_file=FILE .* "
                           r"--config.data.unlabeled_ratio=0"):
    config_check.validate(config)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_passes_validation(name, variant):
  config_check.validate(_load(name, variant))


def test_paper_configs_use_the_mird_layout_and_a_pool():
  for name in ("mosi_paper", "mosei_paper"):
    d = _load(name, None).data
    assert (d.format, d.unlabeled_file, d.unlabeled_ratio) == ("mird", "emovoxceleb.pkl", 2.0)
    assert (d.text_len, d.audio_len, d.audio_dim, d.vision_len, d.vision_dim) == (
        50, 400, 33, 55, 709)
  assert _load("mosei_paper", None).data.metric_dataset == "mosei"


def test_dataset_names_match_the_builders():
  from data_pipelines import tfds_builders  # pylint: disable=g-import-not-at-top
  assert set(config_check.CHOICES["data.name"]) == set(tfds_builders.BUILDERS)


@pytest.mark.parametrize("base", sorted(ablations.BASES))
def test_every_ablation_is_a_valid_override_of_its_base(base):
  reference = ablations.get_config(f"{base},mim")
  for name in ablations.ABLATIONS:
    if name == "no_unlabeled" and not reference.data.unlabeled_ratio:
      with pytest.raises(ValueError, match="already trains without unlabelled data"):
        ablations.get_config(f"{base},{name}")
      continue
    config = ablations.get_config(f"{base},{name}")
    config_check.validate(config)
    changed = sorted(multiseed_diff(reference.to_dict(), config.to_dict()))
    assert (changed == []) == (name == "mim"), (name, changed)


def multiseed_diff(a, b, prefix=""):
  for key in a:
    if isinstance(a[key], dict):
      yield from multiseed_diff(a[key], b[key], f"{prefix}{key}.")
    elif a[key] != b[key]:
      yield f"{prefix}{key}"


def test_ablation_names_are_checked():
  with pytest.raises(ValueError, match="BASE,ABLATION"):
    ablations.get_config("demo")
  assert ablations.get_config(None).to_dict() == ablations.get_config("demo,mim").to_dict()
  with pytest.raises(ValueError, match="ABLATION one of"):
    ablations.get_config("demo,nc")


@pytest.mark.parametrize("preset, base, expected", [
    ("mird", ("mosi", None), {"bert.pretrained_agnostic", "model.init_scheme",
                              "model.lstm_cell", "optim.adamw", "optim.schedule",
                              "loss.log_eps", "club.refresh_latents",
                              "data.group_by_length"}),
    ("mib_complete", ("mib_mosi", "complete"), {
        "model.mib.readout", "model.mib.init", "model.mib.layer_norm_eps",
        "model.mib.fused_task_weight", "model.mib.sample_at_eval", "model.mib.tensor_head",
        "data.text_buckets", "data.group_by_length"}),
    ("mib_late", ("mib_mosi", "late"), {
        "model.mib.readout", "model.mib.init", "model.mib.layer_norm_eps", "data.text_buckets",
        "data.group_by_length",
        "model.mib.fused_task_weight", "model.mib.sample_at_eval", "model.mib.tensor_head",
        "model.mib.fusion"}),
])
def test_public_presets_switch_exactly_the_documented_keys(preset, base, expected):
  """configs/public.py changes what docs/differences.md and docs/mib.md list for it, and
  nothing else; the `public` ablation is the same change on any MIRD base."""
  config = _load("public", preset)
  config_check.validate(config)
  assert set(multiseed_diff(_load(*base).to_dict(), config.to_dict())) == expected
  if preset == "mird":  # On the demo some of them already hold (its BERT is random).
    changed = set(multiseed_diff(ablations.get_config("demo,mim").to_dict(),
                                 ablations.get_config("demo,public").to_dict()))
    assert {"optim.adamw", "model.lstm_cell", "club.refresh_latents"} <= changed <= expected
  with pytest.raises(ValueError, match="mird|mib_complete"):
    _load("public", "mib_sideways")


_LABELS = {"data.label_fraction", "train.epochs", "train.patience"}
_ROW_CHANGES = {  # configs/research.py's rows: what each changes from its family's reference.
    "mim": set(), "none": {"model.constraint"}, "orthogonal": {"model.constraint"},
    "no_unlabeled": {"data.unlabeled_ratio"}, "club_refresh": {"club.refresh_latents"},
    "club_r50": {"club.lr"}, "club_r200": {"club.lr", "club.steps"},
    "club_r1000": {"club.lr", "club.steps"}, "mim_transformer": {"model.av_encoder"},
    "none_transformer": {"model.av_encoder", "model.constraint"},
    "mim_scale_free": {"loss.scale_free"},
    "orthogonal_scale_free": {"loss.scale_free", "model.constraint"},
    "complete_mib": set(), "complete_mib_last": {"model.mib.readout"},
    "complete_mib_lstm": {"model.av_encoder"},
    **{f"{r}_{tag}": changed | _LABELS for tag in ("l10", "l30") for r, changed in (
        ("mim", set()), ("none", {"model.constraint"}), ("complete_mib", set()),
        ("no_unlabeled", {"data.unlabeled_ratio"}))},
}


def test_research_rows_differ_from_their_reference_in_the_documented_keys_only():
  from configs import research  # pylint: disable=g-import-not-at-top
  assert set(research.ROWS) == set(_ROW_CHANGES)
  mird_ref, mib_ref = research.get_config("mim"), research.get_config("complete_mib")
  assert mird_ref.to_dict() == ablations.get_config("table,mim").to_dict() | {
      "num_seeds": 3, "robustness": mird_ref.robustness.to_dict()}
  for row, expected in _ROW_CHANGES.items():
    config = research.get_config(row)
    config_check.validate(config)
    ref = mib_ref if config.model.name == "mib" else mird_ref
    assert set(multiseed_diff(ref.to_dict(), config.to_dict())) == expected, row
    if row.endswith("_l10"):
      assert (config.data.label_fraction, config.train.epochs) == (0.1, 40)
  for table, (_, reference, rows) in research.TABLES.items():
    assert reference in rows and set(rows) <= set(research.ROWS), table
  for row in research.TUNED:
    tuned, plain = research.get_config(f"tune_{row}"), research.get_config(row)
    assert {k.split(".")[0] for k in multiseed_diff(plain.to_dict(), tuned.to_dict())} == {
        "sweep"}
    assert tuned.sweep.trials == research.TRIALS and tuned.sweep.confirm_seeds == 5
  with pytest.raises(ValueError, match="tune_ for mim, none, complete_mib"):
    research.get_config("tune_club_r50")


_NOVISION = {"data.vision_csd", "data.vision_dim"}
_REAL_ROW_CHANGES = {  # The real rows: what each changes from its reference (second item).
    "real_mim": (set(), "real_mim"), "real_none": ({"model.constraint"}, "real_mim"),
    "real_orthogonal": ({"model.constraint"}, "real_mim"),
    "real_mim_novision": (_NOVISION, "real_mim"),
    "real_none_novision": (_NOVISION | {"model.constraint"}, "real_mim"),
    "real_complete_mib": (set(), "real_complete_mib"),
    "real_early_mib": ({"model.mib.variant"}, "real_complete_mib"),
    "real_late_mib": ({"model.mib.variant"}, "real_complete_mib"),
    "real_complete_mib_novision": (_NOVISION, "real_complete_mib"),
    "real_text": (set(), "real_text"),
    "real_text_standard": ({"data.split", "data.audio_csd", "data.audio_dim",
                            "data.vision_csd", "data.vision_dim", "train.report_probes"},
                           "real_text"),
}


def test_real_research_rows_are_configs_real_at_its_defaults_and_differ_as_documented():
  from configs import real  # pylint: disable=g-import-not-at-top
  from configs import research  # pylint: disable=g-import-not-at-top
  assert set(research.REAL_ROWS) == set(_REAL_ROW_CHANGES)
  assert not set(research.REAL_ROWS) & set(research.ROWS)
  mim = research.get_config("real_mim")
  assert mim.to_dict() == real.get_config("utterance,mird").to_dict() | {
      "num_seeds": research.REAL_SEEDS, "robustness": mim.robustness.to_dict()}
  assert mim.robustness.enabled and mim.robustness.conditions == research.REAL_CONDITIONS
  for row, (expected, reference) in _REAL_ROW_CHANGES.items():
    config = research.get_config(row)
    config_check.validate(config)
    assert config.data.text_buckets and config.data.group_by_length, row  # Issue 35: buckets.
    diff = set(multiseed_diff(research.get_config(reference).to_dict(), config.to_dict()))
    assert diff == expected, row
    assert research.data_of(row) == ("standard" if row.endswith("standard") else "utterance")
    smoke = research.get_config(f"{row},smoke")
    config_check.validate(smoke)
    assert not smoke.bert.pretrained and smoke.model.name == config.model.name
  for table, (_, reference, rows) in research.REAL_TABLES.items():
    assert reference in rows and set(rows) <= set(research.REAL_ROWS), table
  assert {r for _, _, rs in research.REAL_TABLES.values() for r in rs} == set(research.REAL_ROWS)
  for row in research.REAL_TUNED:
    tuned, plain = research.get_config(f"tune_{row}"), research.get_config(row)
    assert {k.split(".")[0] for k in multiseed_diff(plain.to_dict(), tuned.to_dict())} == {
        "sweep"}
    assert tuned.sweep.trials == research.REAL_TRIALS and tuned.sweep.confirm_seeds == 5
    space = dict(tuned.sweep.space)
    # The real rates sit inside the searched ranges; the MI keys only where a penalty is.
    for key in ("optim.main_lr", "optim.bert_lr"):
      low, high = map(float, re.findall(r"[\d.e-]+", space[key]))
      assert low < plain.optim[key.split(".")[1]] < high, (row, key)
    assert ("loss.w_mi" in space) == (row == "real_mim"), row
  assert research.data_of("mim") == "synthetic"
  with pytest.raises(ValueError, match="real_none"):
    research.get_config("tune_real_orthogonal")
