r"""Ready search spaces for --mode=sweep (docs/sweeps.md): `BASE,MODEL`.

  python run.py --config=configs/sweeps.py:demo,mird --mode=sweep --workdir=/tmp/sweep_mird
  python run.py --config=configs/sweeps.py:mosi,mib_complete --mode=sweep --workdir=DIR \
      --config.sweep.storage=postgresql://USER:PASSWORD@HOST/DB   # on every machine

BASE: demo (the synthetic benchmark, configs/demo.py and configs/mib_demo.py), mosi,
mosei (real CMU-MOSI/MOSEI: configs/mosi.py, mosei.py, mib_mosi.py, mib_mosei.py), smoke
(seconds on a CPU). MODEL: mird, mib_early, mib_late, mib_complete. No argument:
demo,mird; `smoke`: smoke,mird.

Every MIRD space searches the same keys on every base, as every MIB space does, with
ranges scaled to the base's learning rates (small BERTs trained from scratch on the demo,
pretrained BERT-base on real data). The budget and the confirmation: 12 trials and 3
seeds on the demo, the MIB paper's 50 trials and 5 seeds on real data.
"""

from configs import demo
from configs import mib_demo
from configs import mib_mosei
from configs import mib_mosi
from configs import mosei
from configs import mosi

MODELS = ("mird", "mib_early", "mib_late", "mib_complete")
BASES = ("demo", "mosi", "mosei", "smoke")

# Learning-rate ranges per base: (main, bert), each (low, high).
_LR = {"demo": ((1e-4, 3e-3), (5e-5, 2e-3)), "smoke": ((1e-4, 1e-2), (1e-4, 1e-2)),
       "mosi": ((5e-6, 1e-4), (5e-6, 5e-5)), "mosei": ((5e-6, 1e-4), (5e-6, 5e-5))}


def _base(base: str, model: str):
  if model == "mird":
    return {"demo": demo.get_config, "smoke": lambda: demo.get_config("smoke"),
            "mosi": mosi.get_config, "mosei": mosei.get_config}[base]()
  variant = model.split("_")[1]
  return {"demo": lambda: mib_demo.get_config(f"demo,{variant}"),
          "smoke": lambda: mib_demo.get_config(f"smoke,{variant}"),
          "mosi": lambda: mib_mosi.get_config(variant),
          "mosei": lambda: mib_mosei.get_config(variant)}[base]()


def space(base: str, model: str) -> tuple:
  (main_lo, main_hi), (bert_lo, bert_hi) = _LR[base]
  lrs = (("optim.main_lr", f"loguniform({main_lo}, {main_hi})"),
         ("optim.bert_lr", f"loguniform({bert_lo}, {bert_hi})"))
  if base == "smoke":  # Run-time values only: every trial shares one compiled step.
    weight = "loss.w_mi" if model == "mird" else "model.mib.beta"
    return lrs + ((weight, "loguniform(0.001, 10.0)"),)
  if model == "mird":
    return lrs + (("club.lr", "loguniform(1e-4, 1e-2)"),
                  ("club.steps", "int(1, 10)"),
                  ("loss.w_mi", "loguniform(0.01, 10.0)"),
                  ("model.latent_dropout", "choice(0.1, 0.3, 0.5)"),
                  ("model.regressor_dropout", "choice(0.1, 0.3, 0.5)"))
  return lrs + (("model.mib.beta", "loguniform(1e-5, 0.1)"),
                ("model.mib.attn_dropout", "choice(0.1, 0.3, 0.5)"),
                ("model.mib.relu_dropout", "choice(0.1, 0.3, 0.5)"),
                ("model.mib.embed_dropout", "choice(0.1, 0.2, 0.3)"))


def get_config(arg: str | None = None):
  arg = {None: "demo,mird", "": "demo,mird", "smoke": "smoke,mird"}.get(arg, arg)
  base, _, model = arg.partition(",")
  if base not in BASES or model not in MODELS:
    raise ValueError(f"configs/sweeps.py needs BASE,MODEL with BASE one of {', '.join(BASES)} "
                     f"and MODEL one of {', '.join(MODELS)}; got {arg!r}")
  config = _base(base, model)
  config.sweep.space = space(base, model)
  real = base in ("mosi", "mosei")
  config.sweep.trials = 50 if real else 3 if base == "smoke" else 12
  config.sweep.confirm_seeds = 5 if real else 0 if base == "smoke" else 3
  if base == "smoke":
    config.train.epochs = 1
  return config
