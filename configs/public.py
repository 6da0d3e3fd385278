r"""Every public-code behaviour that a key restores, at once: `[mird|mib_VARIANT][,smoke]`.

  python run.py --config=configs/public.py --workdir=$HOME/runs/mosi_public
  python run.py --config=configs/public.py:mib_late --workdir=$HOME/runs/lmib_public
  python run.py --config=configs/public.py:mird,smoke --workdir=/tmp/public_smoke

`mird` (the default) is configs/mosi.py with the public MIRD code's behaviours switched on;
`mib_complete`, `mib_early`, `mib_late` are configs/mib_mosi.py's variants with the public
MIB code's (cmib.py, emib.py, lmib.py). docs/differences.md and docs/mib.md list each
difference with its key, and those no key restores (padding is masked, the model is
selected on validation data). The parity tests (tests/models/test_parity_mird.py,
tests/models/test_parity_mib.py, tests/training/test_parity_mird_step.py,
tests/training/test_parity_mib_step.py) run these presets against the public code's own
outputs.
"""

from configs import mib_mosi
from configs import mosi


def apply_mird(config) -> None:
  """The public MIRD code's choices, on a MIRD config."""
  config.bert.pretrained_agnostic = False  # Its WSA-BERT starts random (N(0, 0.02)).
  config.model.init_scheme = "pytorch"  # torch's default initialisers outside BERT and WSA.
  config.model.lstm_cell = "torch"  # Two biases per gate, each moved by AdamW.
  config.optim.adamw = "transformers"  # transformers' AdamW arithmetic.
  config.optim.schedule = "public_ramp"  # Its scheduler, arguments swapped.
  config.loss.log_eps = 0.0  # log(term), not log(term + 1e-8).
  config.club.refresh_latents = True  # Estimators refitted on post-update latents.
  config.data.group_by_length = False  # Its random batches.


def apply_mib(config) -> None:
  """The public MIB code's choices, on a MIB config (its variant already set)."""
  b = config.model.mib
  b.readout = "last"  # The last time step of each encoder.
  # That step is a padded one, so cutting batches to buckets would change what is read.
  config.data.text_buckets = config.data.audio_buckets = config.data.vision_buckets = ()
  config.data.group_by_length = False  # Nothing to group by; its random batches.
  b.init = "public"  # Its init_weights(): every Linear N(0, 0.02).
  b.layer_norm_eps = 1e-5  # torch's LayerNorm.
  b.fused_task_weight = 2.0  # The fused prediction's L1 counted twice.
  b.sample_at_eval = True  # Its test() samples z.
  # Each variant file's own fusion: L-MIB's is the tensor fusion, with its head.
  b.fusion = "tensor" if b.variant == "late" else "concat"
  b.tensor_head = "public"


def get_config(arg: str | None = None):
  tokens = [t for t in (arg or "mird").split(",") if t]
  smoke = "smoke" in tokens
  names = [t for t in tokens if t != "smoke"] or ["mird"]
  variants = {"mib_complete": "complete", "mib_early": "early", "mib_late": "late"}
  if len(names) != 1 or names[0] not in ("mird", *variants):
    raise ValueError(f"unknown config variant {arg!r} for configs/public.py; expected "
                     "[mird|mib_complete|mib_early|mib_late][,smoke]")
  if names[0] == "mird":
    config = mosi.get_config("smoke" if smoke else None)
    apply_mird(config)
  else:
    config = mib_mosi.get_config(variants[names[0]] + (",smoke" if smoke else ""))
    apply_mib(config)
  return config
