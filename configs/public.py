r"""Every public-code behaviour that a key restores, at once: `[mird|mib_VARIANT][,smoke]`.

  python run.py --config=configs/public.py --workdir=$HOME/runs/mosi_public
  python run.py --config=configs/public.py:mird,smoke --workdir=/tmp/public_smoke

`mird` (the default) is configs/mosi.py with the public MIRD code's behaviours switched on;
docs/differences.md lists each with its key, and the differences no key restores (padding
is masked, the model is selected on validation data). The parity tests
(tests/models/test_parity_mird.py, tests/training/test_parity_mird_step.py) run this
preset against the public code's own outputs.
"""

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


def get_config(arg: str | None = None):
  tokens = [t for t in (arg or "mird").split(",") if t]
  smoke = "smoke" in tokens
  names = [t for t in tokens if t != "smoke"] or ["mird"]
  if names != ["mird"]:
    raise ValueError(f"unknown config variant {arg!r} for configs/public.py; expected "
                     "[mird][,smoke]")
  config = mosi.get_config("smoke" if smoke else None)
  apply_mird(config)
  return config
