r"""The paper's ablations (and ours) as overrides of a base config: `BASE,ABLATION`.

  python run.py --config=configs/ablations.py:table,orthogonal --mode=multiseed --workdir=DIR
  python run.py --config=configs/ablations.py:mosi_paper,none --mode=multiseed --workdir=DIR

Without an argument: demo,mim; `:smoke`: smoke,mim.
BASE: demo, table (the demo at the README results' sizes), smoke (the demo's smoke
variant), mosi, mosei, mosi_paper, mosei_paper. ABLATION:
  mim           the base itself: MIRD with CLUB MI minimisation
  none          no constraint between z_s and the specific latents (the paper's NC)
  orthogonal    soft orthogonality instead of MI minimisation (the paper's OC)
  mim_scale_free, orthogonal_scale_free
                our extension, not the paper's: the same penalty on latents standardised
                over the batch (loss.scale_free), which no latent can meet by shrinking
  no_unlabeled  no unlabelled data (bases with a pool only)
  no_recon      no reconstruction decoders or losses
  wa            softmax word-wise alignment instead of WSA's sparsemax
  weighted      loss.combine=weighted (sum of weight x term) instead of the log combination
  public_lr     the public code's learning-rate schedule (a ramp to the peak over the run)
  public        every public-code behaviour a key restores (configs/public.py): its
                schedule, AdamW arithmetic, initialisers, LSTM biases, log(term), the
                estimators refitted on post-update latents and a random WSA-BERT
"""

from configs import demo
from configs import mosei
from configs import mosei_paper
from configs import mosi
from configs import mosi_paper
from configs import public

BASES = {
    "demo": lambda: demo.get_config(),
    "table": lambda: demo.get_config("table"),
    "smoke": lambda: demo.get_config("smoke"),
    "mosi": lambda: mosi.get_config(),
    "mosei": lambda: mosei.get_config(),
    "mosi_paper": lambda: mosi_paper.get_config(),
    "mosei_paper": lambda: mosei_paper.get_config(),
}


def _no_unlabeled(config):
  if not config.data.unlabeled_ratio:
    raise ValueError("ablation no_unlabeled: this base already trains without unlabelled "
                     "data (data.unlabeled_ratio=0); compare with its mim row instead")
  config.data.unlabeled_ratio = 0.0


def _no_recon(config):
  config.loss.w_recon_text = 0.0
  config.loss.w_recon_audio = 0.0
  config.loss.w_recon_vision = 0.0


ABLATIONS = {
    "mim": lambda c: None,
    "none": lambda c: setattr(c.model, "constraint", "none"),
    "orthogonal": lambda c: setattr(c.model, "constraint", "orthogonal"),
    "mim_scale_free": lambda c: setattr(c.loss, "scale_free", True),
    "orthogonal_scale_free": lambda c: (setattr(c.model, "constraint", "orthogonal"),
                                        setattr(c.loss, "scale_free", True)),
    "no_unlabeled": _no_unlabeled,
    "no_recon": _no_recon,
    "wa": lambda c: setattr(c.model, "fusion", "wa"),
    "weighted": lambda c: setattr(c.loss, "combine", "weighted"),
    "public_lr": lambda c: setattr(c.optim, "schedule", "public_ramp"),
    "public": public.apply_mird,
}


def get_config(arg: str | None = None):
  # Alone, the file is the demo's MIRD row; `smoke` its tiny CPU variant.
  arg = {None: "demo,mim", "": "demo,mim", "smoke": "smoke,mim"}.get(arg, arg)
  base, _, ablation = arg.partition(",")
  if base not in BASES or ablation not in ABLATIONS:
    raise ValueError(f"configs/ablations.py needs BASE,ABLATION with BASE one of "
                     f"{', '.join(BASES)} and ABLATION one of {', '.join(ABLATIONS)}; "
                     f"got {arg!r}")
  config = BASES[base]()
  ABLATIONS[ablation](config)
  return config
