r"""MIRD on CMU-MOSI as the paper trains it: MIRD-layout features and an unlabelled pool.

  python run.py --config=configs/mosi_paper.py --workdir=$HOME/runs/mosi_paper \
    --config.data.manual_dir=/data/mird --config.bert.path=/models/bert-base-uncased

The MIRD code's files (docs/data.md): `mosi.pkl` with train/valid/test splits of
`raw_text`, `audio` (librosa-style, 400 frames x 33), `video` (OpenFace-style, 55 frames x
709) and `labels`; and an unlabelled pool `emovoxceleb.pkl`, a flat dict of `raw_text`,
`audio` and `video` with the same dims. Text is re-tokenised with the configured BERT
tokenizer to 50 tokens. Two unlabelled examples per labelled one, as the public script.
"""

from configs import mosi


def apply_paper_data(config, file: str) -> None:
  """The MIRD layout, its feature dims and the unlabelled pool, on any base config."""
  config.data.format = "mird"
  config.data.file = file
  config.data.unlabeled_file = "emovoxceleb.pkl"
  config.data.unlabeled_ratio = 2.0
  # The paper's random batches: its unlabelled rows (run in the same batch) keep a batch
  # at the padded length anyway, so grouping would only change the order.
  config.data.group_by_length = False
  config.data.text_len = 50
  config.data.audio_len = 400
  config.data.audio_dim = 33
  config.data.vision_len = 55
  config.data.vision_dim = 709


def get_config(arg: str | None = None):
  config = mosi.get_config()
  apply_paper_data(config, "mosi.pkl")
  if arg == "smoke":
    mosi.apply_smoke(config)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r} for configs/mosi_paper.py; expected smoke")
  return config
