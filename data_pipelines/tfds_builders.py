"""TFDS builders: cmu_mosi, cmu_mosei (manual download) and synthetic_mosi (generated).

They write `array_record` files that `tfds.data_source` reads back with random access and no
TensorFlow. Splits: train, valid, test, and unlabeled when a pool file is configured.
A builder config carries the format, file names, padded shapes, label range and tokenizer;
`config_for` derives one from an ml_collections config, named by a hash of its fields and of
the raw files' size and modification time, so editing a file or a shape rebuilds instead
of silently reusing stale data.
"""

import dataclasses
import functools
import hashlib
import json
import pathlib

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import example
from data_pipelines import readers
from data_pipelines import segments
from data_pipelines import standardize
from data_pipelines import synthetic
from data_pipelines import text


@dataclasses.dataclass
class MirdBuilderConfig(tfds.core.BuilderConfig):
  fmt: str = "mmsa"
  file: str = "unaligned_50.pkl"
  unlabeled_file: str = ""
  text_len: int = 50
  audio_len: int = 375
  audio_dim: int = 5
  vision_len: int = 500
  vision_dim: int = 20
  label_min: float = -3.0
  label_max: float = 3.0
  tokenizer: str = ""  # bert.path: re-tokenises raw_text when text_bert does not match.
  vocab_size: int = 0  # 0: not checked (pretrained tokenizer); else ids must be below it.
  max_abs_feature: float = 1e6  # Larger |feature values| stop the build (data.max_abs_feature).
  # fmt=label_csv: the .csd files joined with the label.csv `file` ("" = none), how the
  # splits are made and what happens to segments absent from a .csd (segments.Sources).
  audio_csd: str = ""
  vision_csd: str = ""
  label_csd: str = ""
  split: str = "file"
  folds: str = "mosi"
  missing_segments: str = "refuse"
  standardize: bool = False  # z-score audio and vision with train-split statistics.
  synthetic_json: str = ""  # synthetic_mosi only: the SyntheticSpec as JSON.
  fingerprint: str = ""  # Size and mtime of the raw files, so a changed file rebuilds.

  def dims(self) -> example.Dims:
    return example.Dims(self.text_len, self.audio_len, self.audio_dim, self.vision_len,
                        self.vision_dim)


def _features(cfg: MirdBuilderConfig) -> tfds.features.FeaturesDict:
  feats = {}
  for key, (shape, dtype) in cfg.dims().shapes().items():
    feats[key] = (tfds.features.Scalar(dtype=dtype) if shape == () else
                  tfds.features.Tensor(shape=shape, dtype=dtype))
  feats["id"] = tfds.features.Text()
  return tfds.features.FeaturesDict(feats)


class _MirdBuilder(tfds.core.ShardBasedBuilder, skip_registration=True):
  """Reads the configured raw files with data_pipelines.readers and writes canonical examples.

  Shard-based, not GeneratorBasedBuilder: TFDS's shuffler buffers a split in memory and
  spills to disk through TensorFlow past 1 GB (MOSEI is 3.5 GB), while shard-based writing
  streams examples to array_record in file order. The input pipeline does the shuffling.
  """
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Canonical MIRD examples (ids, masks, padded frames, lengths)."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=_features(self.builder_config),
                                          supervised_keys=None)

  def _raw_dir(self, dl_manager) -> pathlib.Path:
    return pathlib.Path(dl_manager.manual_dir)

  def _shard_iterators_per_split(self, dl_manager):
    cfg = self.builder_config
    raw = self._raw_dir(dl_manager)
    spec = readers.ReadSpec(cfg.dims(), cfg.label_min, cfg.label_max, cfg.vocab_size or None,
                            cfg.max_abs_feature)
    tokenizer = text.load_tokenizer(cfg.tokenizer)
    if cfg.fmt == segments.FORMAT:
      splits, _ = segments.read_labelled(raw / cfg.file, spec, _sources(cfg, raw), tokenizer)
    else:
      splits, _, _ = readers.read_labelled(raw / cfg.file, spec, tokenizer, cfg.fmt)
    if cfg.unlabeled_file:
      splits["unlabeled"], _ = readers.read_pool(raw / cfg.unlabeled_file, spec, tokenizer)
    if cfg.standardize:
      splits, stats = standardize.standardize(splits)
      logging.info("standardised audio and vision with train-split statistics: %s", {
          m: f"mean |mu| {np.abs(mu).mean():.3g}, mean sigma {sd.mean():.3g}"
          for m, (mu, sd) in stats.items()})
    return {name: [functools.partial(_examples, split)] for name, split in splits.items()}


def _sources(cfg: MirdBuilderConfig, raw: pathlib.Path) -> segments.Sources:
  path = lambda name: raw / name if name else None
  return segments.Sources(audio=path(cfg.audio_csd), vision=path(cfg.vision_csd),
                          labels=path(cfg.label_csd), split=cfg.split, folds=cfg.folds,
                          missing=cfg.missing_segments)


def _examples(split):
  for i in range(example.num_examples(split)):
    yield i, {k: split[k][i] for k in example.KEYS}


class CmuMosi(_MirdBuilder):
  """CMU-MOSI from the MMSA feature pickles or the MIRD layout."""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the CMU-MOSI feature file in manual_dir (data.manual_dir, default
  <data_dir>/downloads/manual), named as data.file says:
    MMSA: MOSI/Processed/unaligned_50.pkl or aligned_50.pkl from the MMSA release
      (SHA-256 in data_pipelines/tools/verify.py; check with python -m data_pipelines.tools.verify).
    MIRD: the MIRD code's data/mosi/mosi.pkl (data.format=mird).
    MAG-BERT/MIB: the word-aligned datasets/mosi.pkl (data.format=mag, configs/mib_mosi.py).
    CMU-SDK / MMSA: an MMSA label.csv (data.format=label_csv), and the .csd computational
      sequences named by data.audio_csd, data.vision_csd and data.label_csd (configs/real.py).
  An unlabelled pool (MIRD's emovoxceleb.pkl) goes beside it, named by data.unlabeled_file.
  Nothing is downloaded by this builder."""
  BUILDER_CONFIGS = [
      MirdBuilderConfig(name="unaligned_50", file="unaligned_50.pkl"),
      MirdBuilderConfig(name="aligned_50", file="aligned_50.pkl", audio_len=50, vision_len=50),
      MirdBuilderConfig(name="mird", fmt="mird", file="mosi.pkl", audio_len=400, audio_dim=33,
                        vision_len=55, vision_dim=709, tokenizer="bert-base-uncased"),
      MirdBuilderConfig(name="mag", fmt="mag", file="mosi.pkl", audio_len=50, audio_dim=74,
                        vision_len=50, vision_dim=47, tokenizer="bert-base-uncased"),
  ]


class CmuMosei(_MirdBuilder):
  """CMU-MOSEI from the MMSA feature pickles or the MIRD layout."""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put the CMU-MOSEI feature file in manual_dir (data.manual_dir, default
  <data_dir>/downloads/manual), named as data.file says:
    MMSA: MOSEI/Processed/unaligned_50.pkl or aligned_50.pkl from the MMSA release.
    MIRD: data/mosei/mosei.pkl in the MIRD layout (data.format=mird).
    MAG-BERT/MIB: the word-aligned datasets/mosei.pkl (data.format=mag).
    CMU-SDK / MMSA: a label.csv and .csd files (data.format=label_csv), as for CMU-MOSI.
  Nothing is downloaded by this builder."""
  BUILDER_CONFIGS = [
      MirdBuilderConfig(name="unaligned_50", file="unaligned_50.pkl", audio_len=500,
                        audio_dim=74, vision_len=500, vision_dim=35),
      MirdBuilderConfig(name="aligned_50", file="aligned_50.pkl", audio_len=50, audio_dim=74,
                        vision_len=50, vision_dim=35),
      MirdBuilderConfig(name="mag", fmt="mag", file="mosei.pkl", audio_len=50, audio_dim=74,
                        vision_len=50, vision_dim=35, tokenizer="bert-base-uncased"),
  ]


class SyntheticMosi(_MirdBuilder):
  """The synthetic benchmark (data_pipelines/synthetic.py), generated into manual_dir."""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Nothing to download: the files are generated into manual_dir when absent."""
  BUILDER_CONFIGS = [MirdBuilderConfig(
      name="small", unlabeled_file="unlabeled.pkl", text_len=16, audio_len=24, vision_len=20,
      vocab_size=512, synthetic_json=json.dumps(dataclasses.asdict(synthetic.SyntheticSpec(
          n_train=32, n_valid=12, n_test=12, n_unlabeled=16, text_len=16, audio_len=24,
          vision_len=20, vocab_size=512))))]

  def _raw_dir(self, dl_manager) -> pathlib.Path:
    raw = pathlib.Path(dl_manager._manual_dir)  # pylint: disable=protected-access
    ensure_synthetic(raw, self.builder_config)
    return raw


def ensure_synthetic(raw: pathlib.Path, cfg: MirdBuilderConfig) -> None:
  """Generates the synthetic files into `raw` unless the same spec is already there. The
  generator refuses to replace a file it did not write (synthetic.write)."""
  spec = synthetic.SyntheticSpec(**json.loads(cfg.synthetic_json))
  marker = raw / "synthetic_spec.json"
  if marker.exists() and marker.read_text() == cfg.synthetic_json and (raw / cfg.file).exists():
    return
  synthetic.write(spec, raw, cfg.fmt)
  marker.write_text(cfg.synthetic_json)


BUILDERS = {"cmu_mosi": CmuMosi, "cmu_mosei": CmuMosei, "synthetic_mosi": SyntheticMosi}


def raw_files(config) -> list[str]:
  """The names of the files in manual_dir that the configured dataset reads."""
  d = config.data
  names = [d.file, d.unlabeled_file]
  if d.format == segments.FORMAT:
    names += [d.audio_csd, d.vision_csd, d.label_csd]
  return [n for n in names if n]


def _fingerprint(paths) -> str:
  parts = []
  for p in paths:
    st = p.stat() if p.exists() else None
    parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}" if st else f"{p.name}:absent")
  return ";".join(parts)


def config_for(config, manual_dir: pathlib.Path) -> MirdBuilderConfig:
  """The builder config an ml_collections config asks for, named by a hash of its fields."""
  d = config.data
  fields = dict(
      fmt=d.format, file=d.file, unlabeled_file=d.unlabeled_file, text_len=d.text_len,
      audio_len=d.audio_len, audio_dim=d.audio_dim, vision_len=d.vision_len,
      vision_dim=d.vision_dim, label_min=d.label_min, label_max=d.label_max,
      tokenizer=config.bert.path,
      vocab_size=0 if config.bert.pretrained else config.bert.random.vocab_size,
      max_abs_feature=d.max_abs_feature, standardize=d.standardize)
  if d.format == segments.FORMAT:
    fields.update(audio_csd=d.audio_csd, vision_csd=d.vision_csd, label_csd=d.label_csd,
                  split=d.split, folds=d.metric_dataset, missing_segments=d.missing_segments)
  if d.name == "synthetic_mosi":
    fields["synthetic_json"] = json.dumps(dataclasses.asdict(
        synthetic.SyntheticSpec.from_config(d)), sort_keys=True)
  else:
    fields["fingerprint"] = _fingerprint([manual_dir / f for f in raw_files(config)])
  digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
  name = f"{d.format}_t{d.text_len}_a{d.audio_len}x{d.audio_dim}_v{d.vision_len}x{d.vision_dim}"
  return MirdBuilderConfig(name=f"{name}_{digest}", **fields)


def paths(config, workdir) -> tuple[pathlib.Path, pathlib.Path]:
  """(data_dir, manual_dir) with the config's defaults resolved against the workdir."""
  data_dir = pathlib.Path(config.data.data_dir or pathlib.Path(workdir) / "tfds")
  # The synthetic benchmark is generated, by default into the workdir.
  default = (pathlib.Path(workdir) / "raw" if config.data.name == "synthetic_mosi" else
             data_dir / "downloads" / "manual")
  return data_dir, pathlib.Path(config.data.manual_dir or default)


def prepare(config, workdir) -> dict[str, object]:
  """Builds the configured dataset if needed; returns {split: random-access data source}."""
  if config.data.name not in BUILDERS:
    raise ValueError(f"data.name={config.data.name!r} is not one of {sorted(BUILDERS)}")
  data_dir, manual = paths(config, workdir)
  builder_cls = BUILDERS[config.data.name]
  if config.data.name != "synthetic_mosi":
    instructions = " ".join(builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS.split())
    for f in raw_files(config):
      if not (manual / f).is_file():
        raise FileNotFoundError(f"{manual / f}: no such file (data.file, data.unlabeled_file "
                                f"or a data.*_csd, in data.manual_dir). {instructions}")
  builder = builder_cls(config=config_for(config, manual), data_dir=str(data_dir),
                        file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return {split: builder.as_data_source(split=split) for split in builder.info.splits}
