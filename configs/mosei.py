r"""MIRD on CMU-MOSEI (MMSA `unaligned_50.pkl` features): configs/mosi.py with MOSEI data.

  python run.py --config=configs/mosei.py --workdir=$HOME/runs/mosei
  python run.py --config=configs/mosei.py:smoke --workdir=/tmp/mosei_smoke
"""

from configs import mosi


def get_config(arg: str | None = None):
  config = mosi.get_config()
  config.data.name = "cmu_mosei"
  config.data.metric_dataset = "mosei"
  config.data.audio_len = 500  # MOSEI unaligned COVAREP frames.
  config.data.audio_dim = 74
  config.data.vision_len = 500  # MOSEI unaligned Facet frames.
  config.data.vision_dim = 35
  # MOSEI epochs are 13x longer than MOSI's; the public code still ran 100.
  config.train.epochs = 40
  config.train.patience = 8
  if arg == "smoke":
    mosi.apply_smoke(config)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r} for configs/mosei.py; expected smoke")
  return config
