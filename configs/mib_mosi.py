r"""MIB (E-MIB, L-MIB, C-MIB) on CMU-MOSI from the MAG-BERT word-aligned pickle, with the
public MIB code's dimensions and hyper-parameters: `[VARIANT][,smoke]`.

  python run.py --config=configs/mib_mosi.py:early --workdir=$HOME/runs/mib_mosi_early
  python run.py --config=configs/mib_mosi.py:complete,smoke --workdir=/tmp/mib_smoke

VARIANT: early | late | complete (default). The MAG-BERT file (`mosi.pkl`, splits
train/dev/test of ((words, visual, acoustic), label, segment)) is word-level: each word's
rows are repeated for its WordPieces, so text, audio and vision share the text's 50 steps.
The MMSA files work too: --config.data.format=mmsa --config.data.file=aligned_50.pkl with
that file's dims (docs/mib.md).
"""

from configs import mosi


def apply_mib(config, variant: str) -> None:
  """Turns a config into MIB's: model, losses and optimiser as the public MIB code has them."""
  config.model.name = "mib"
  config.model.mib.variant = variant
  config.model.av_encoder = "transformer"
  config.data.unlabeled_file = ""  # MIB trains on labelled examples only.
  config.data.unlabeled_ratio = 0.0
  config.loss.task = "l1"  # The public code's training loss (it logs MSE).
  config.loss.combine = "weighted"  # Sum of task and beta x KL terms.
  # Two Adam optimisers: BERT with the text projection, and everything else.
  config.optim.groups = ((r"(bert|proj_l)/.*", "bert"), (r".*", "main"))
  config.optim.bert_lr = 1e-5
  config.optim.main_lr = 2e-5
  config.optim.weight_decay = 0.0
  config.optim.eps = 1e-8  # torch.optim.Adam's.
  config.optim.schedule = "constant"
  config.optim.grad_clip = 0.0
  config.club.monitor = False  # No latents pair for CLUB to measure.


def parse(arg: str | None, name: str) -> tuple[str, bool]:
  """`[VARIANT][,smoke]` -> (variant, smoke)."""
  variant, smoke = "complete", False
  for token in filter(None, (arg or "").split(",")):
    if token == "smoke":
      smoke = True
    elif token in ("early", "late", "complete"):
      variant = token
    else:
      raise ValueError(f"unknown config variant {arg!r} for {name}; expected "
                       "[early|late|complete][,smoke]")
  return variant, smoke


def mag_data(config, file: str, vision_dim: int) -> None:
  """The MAG-BERT pickle: 50 WordPiece steps, every modality aligned to them."""
  d = config.data
  d.format = "mag"
  d.file = file
  d.text_len = d.audio_len = d.vision_len = 50
  d.audio_dim = 74  # COVAREP.
  d.vision_dim = vision_dim  # Facet: 47 on MOSI, 35 on MOSEI.


def get_config(arg: str | None = None):
  variant, smoke = parse(arg, "configs/mib_mosi.py")
  config = mosi.get_config()
  apply_mib(config, variant)
  mag_data(config, "mosi.pkl", 47)
  config.train.epochs = 50  # The public code's; it has no early stopping.
  config.train.patience = 50
  if smoke:
    mosi.apply_smoke(config)
    config.data.audio_len = config.data.vision_len = config.data.text_len
    apply_mib_smoke(config)
  return config


def apply_mib_smoke(config) -> None:
  """MIB's part of a smoke config: narrow bottlenecks and one small encoder layer."""
  config.model.mib.hidden = 32
  config.model.mib.width = config.model.mib.bottleneck = 16
  config.model.mib.heads = 2
  config.model.mib.layers = 1
