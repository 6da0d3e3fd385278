r"""MIRD on CMU-MOSEI as the paper trains it: configs/mosei.py with the MIRD-layout data.

  python run.py --config=configs/mosei_paper.py --workdir=$HOME/runs/mosei_paper \
    --config.data.manual_dir=/data/mird --config.bert.path=/models/bert-base-uncased

Files: `mosei.pkl` in the MIRD layout and the `emovoxceleb.pkl` pool (configs/mosi_paper.py).
"""

from configs import mosei
from configs import mosi
from configs import mosi_paper


def get_config(arg: str | None = None):
  config = mosei.get_config()
  mosi_paper.apply_paper_data(config, "mosei.pkl")
  if arg == "smoke":
    mosi.apply_smoke(config)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r} for configs/mosei_paper.py; expected "
                     "smoke")
  return config
