r"""MIB on the built-in synthetic benchmark, beside MIRD's demo: `BASE,VARIANT`.

  python run.py --config=configs/mib_demo.py:demo,complete --workdir=/tmp/mib_demo
  python run.py --config=configs/mib_demo.py:table,early --mode=multiseed --workdir=DIR

BASE: demo | table | smoke (configs/demo.py's variants); VARIANT: early | late | complete.
No argument: demo,complete; `smoke`: smoke,complete. Same data, BERT sizes, epochs, batch,
learning rates and schedule as the MIRD rows of that base (so the rows of a table differ in
the model only); MIB's own model, losses (L1 task, beta x KL) and Adam without weight decay.
"""

from configs import demo
from configs import mib_mosi


def get_config(arg: str | None = None):
  arg = {None: "demo,complete", "": "demo,complete", "smoke": "smoke,complete"}.get(arg, arg)
  base, _, variant = arg.partition(",")
  if base not in ("demo", "table", "smoke") or variant not in ("early", "late", "complete"):
    raise ValueError(f"configs/mib_demo.py needs BASE,VARIANT with BASE one of demo, table, "
                     f"smoke and VARIANT one of early, late, complete; got {arg!r}")
  config = demo.get_config(None if base == "demo" else base)
  lrs, schedule = (config.optim.bert_lr, config.optim.main_lr), config.optim.schedule
  unlabeled_file = config.data.unlabeled_file
  mib_mosi.apply_mib(config, variant)
  # The demo's policy for from-scratch BERTs, as MIRD's rows have it.
  (config.optim.bert_lr, config.optim.main_lr), config.optim.schedule = lrs, schedule
  # The pool stays named (unused) so the dataset is the one MIRD's rows build.
  config.data.unlabeled_file = unlabeled_file
  if base == "smoke":
    mib_mosi.apply_mib_smoke(config)
  return config
