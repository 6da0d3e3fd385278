r"""MIB on CMU-MOSEI from the MAG-BERT word-aligned pickle: configs/mib_mosi.py with MOSEI
data (`mosei.pkl`, Facet dim 35). `[VARIANT][,smoke]` as there.

  python run.py --config=configs/mib_mosei.py:complete --workdir=$HOME/runs/mib_mosei
"""

from configs import mib_mosi


def get_config(arg: str | None = None):
  config = mib_mosi.get_config(arg)
  config.data.name = "cmu_mosei"
  config.data.metric_dataset = "mosei"
  config.data.file = "mosei.pkl"
  config.data.vision_dim = 35
  return config
