r"""The research protocol (docs/results.md): every row of every results table, fixed here
before any of them was run. `ROW` or `tune_ROW`:

  python run.py --config=configs/research.py:mim --mode=multiseed --workdir=W/rows/mim
  python run.py --config=configs/research.py:tune_mim --mode=sweep --workdir=W/tuned/mim
  bash docs/results.sh W        # every row, every sweep, every table
  python run.py --config=configs/research.py:none,smoke --workdir=/tmp/x   # tiny, CPU

Benchmark: the synthetic demo at the README table's size (configs/demo.py:table: 3000
labelled train / 229 valid / 686 test examples, a pool of 3000 unlabelled ones, 4 epochs
with patience 2, selection on validation MAE), seeds 0, 1, 2; every row also scored under
the corrupted-input conditions (robustness.enabled). Rows differ from their table's
reference in the keys named below only.

Estimator speed. How fast the CLUB estimators track the encoders, as the ratio
r = club.lr x club.steps / optim.main_lr of their step sizes per update: the demo's
r = 1e-3 x 5 / 1e-3 = 5; the public code's about 1e-3 x 5 / 5e-6 = 1000 (its encoders'
AdamW at 1e-5, ramped from 0, so about half of that on average).
  mim             r = 5 (the demo's MIRD)
  club_refresh    r = 5, each estimator update on fresh post-update latents (the public way)
  club_r50        club.lr 1e-2
  club_r200       club.lr 1e-2, club.steps 20
  club_r1000      club.lr 5e-2, club.steps 20
Encoder vs objective (model.av_encoder; MIB's readout):
  mim, none                         MIRD's LSTM last state
  mim_transformer, none_transformer MIRD with MIB's masked-mean Transformer
  complete_mib                      C-MIB with its Transformer, masked mean
  complete_mib_last                 C-MIB with the public last-position readout
  complete_mib_lstm                 C-MIB with MIRD's LSTM last state
Constraints, and our scale-free variant (loss.scale_free, an extension, not the paper's):
  mim, none, orthogonal, mim_scale_free, orthogonal_scale_free
Fewer labels (data.label_fraction 0.1 or 0.3 of the train split, the rest added to the
unlabelled pool; epochs and patience scaled by 1 / fraction, so every row makes as many
updates as at full labels):
  mim_l10, no_unlabeled_l10, none_l10, complete_mib_l10, and the same with _l30
Equal tuning (`tune_ROW` for ROW in TUNED): TRIALS trials of --mode=sweep on seed 0's
validation MAE (TPE, median pruning after the first epoch), then the best configuration
and the untuned one over seeds 1 to 5 (the sweep's confirmation).

Real CMU-MOSI (`real_*` rows, REAL_TABLES; fixed before any of them was run). Data: the
utterance-level files of configs/real.py with their own split (train 62 videos, valid 11,
test 20: the only split on which those features are not fitted to the test videos), or,
for `real_text_standard`, the transcripts on the SDK's standard folds. Every row is
configs/real.py's DATA,MODEL at its defaults (all-MiniLM-L6-v2 BERTs, 8 epochs with
patience 3 on validation MAE, length buckets and grouping), REAL_SEEDS seeds, test scored
once per seed, then scored again with each modality removed (REAL_CONDITIONS). Ridge
probes of each modality's features are reported beside every row (train.report_probes).
  real_text                       the BERT branch alone (transcripts)
  real_mim, real_none, real_orthogonal   MIRD and its two ablations
  real_complete_mib, real_early_mib, real_late_mib
  real_mim_novision, real_none_novision, real_complete_mib_novision
                                  vision removed from training (its 3D-CNN features were
                                  fitted on the train videos' labels)
  real_text_standard              the text row on the standard folds
Equal tuning on real data (`tune_ROW` for ROW in REAL_TUNED): REAL_TRIALS trials of
--mode=sweep in REAL_SPACE's ranges (centred on configs/real.py's rates), then the best
configuration and the untuned one over seeds 1 to 5.
"""

from configs import ablations
from configs import mib_demo
from configs import real
from configs import sweeps

BASE = "table"
SEEDS = 3
TRIALS = 8
CONFIRM_SEEDS = 5
TUNED = ("mim", "none", "complete_mib")
FRACTIONS = {"l10": 0.1, "l30": 0.3}


def _set(**keys):
  """An override setting dotted `keys` (with __ for the dots)."""
  def apply(config):
    for dotted, value in keys.items():
      *parents, leaf = dotted.split("__")
      node = config
      for p in parents:
        node = getattr(node, p)
      setattr(node, leaf, value)
  return apply


def _make_row(make, *overrides):
  """A row: `make(base)` (a family's config on the base), then each override on it."""
  def build(base: str):
    config = make(base)
    for o in overrides:
      o(config)
    return config
  return build


def _mird(ablation: str, *overrides):
  return _make_row(lambda base: ablations.get_config(f"{base},{ablation}"), *overrides)


def _mib(*overrides):
  return _make_row(lambda base: mib_demo.get_config(f"{base},complete"), *overrides)


_TRANSFORMER = _set(model__av_encoder="transformer")

ROWS = {
    "mim": _mird("mim"),
    "none": _mird("none"),
    "orthogonal": _mird("orthogonal"),
    "no_unlabeled": _mird("no_unlabeled"),
    "club_refresh": _mird("mim", _set(club__refresh_latents=True)),
    "club_r50": _mird("mim", _set(club__lr=1e-2)),
    "club_r200": _mird("mim", _set(club__lr=1e-2, club__steps=20)),
    "club_r1000": _mird("mim", _set(club__lr=5e-2, club__steps=20)),
    "mim_transformer": _mird("mim", _TRANSFORMER),
    "none_transformer": _mird("none", _TRANSFORMER),
    "complete_mib": _mib(),
    # The last-step readout reads a padded step: batches stay whole.
    "complete_mib_last": _mib(_set(model__mib__readout="last", data__text_buckets=(),
                                   data__audio_buckets=(), data__vision_buckets=(),
                                   data__group_by_length=False)),
    "complete_mib_lstm": _mib(_set(model__av_encoder="lstm")),
    "mim_scale_free": _mird("mim_scale_free"),
    "orthogonal_scale_free": _mird("orthogonal_scale_free"),
}


def _fewer_labels(build, fraction: float):
  def apply(base: str):
    config = build(base)
    config.data.label_fraction = fraction
    config.train.epochs = round(config.train.epochs / fraction)
    config.train.patience = round(config.train.patience / fraction)
    return config
  return apply


for _tag, _fraction in FRACTIONS.items():
  for _row in ("mim", "no_unlabeled", "none", "complete_mib"):
    ROWS[f"{_row}_{_tag}"] = _fewer_labels(ROWS[_row], _fraction)

# The tables of docs/results.md: (title, reference row, rows), fixed with the rows.
TABLES = {
    "estimator_speed": ("Estimator speed", "mim",
                        ("mim", "club_refresh", "club_r50", "club_r200", "club_r1000")),
    "encoders": ("Encoder vs objective", "mim",
                 ("mim", "none", "mim_transformer", "none_transformer", "complete_mib",
                  "complete_mib_last", "complete_mib_lstm")),
    "constraints": ("Constraints and the scale-free variant", "none",
                    ("none", "mim", "orthogonal", "mim_scale_free", "orthogonal_scale_free",
                     "no_unlabeled")),
    **{f"labels_{tag}": (f"{round(100 * f)}% of the labels", f"mim_{tag}",
                         tuple(f"{r}_{tag}" for r in ("mim", "no_unlabeled", "none",
                                                      "complete_mib")))
       for tag, f in FRACTIONS.items()},
}


def _space(row: str) -> tuple:
  """The row's search space: configs/sweeps.py's for its family, less the keys the row
  never reads (no MI weight or estimator settings without the MI penalty)."""
  if row.endswith("mib"):
    return sweeps.space("demo", "mib_complete")
  return _read_by(row, sweeps.space("demo", "mird"))


def _read_by(row: str, space) -> tuple:
  """`space` less the MI weight and estimator keys, unless `row` has the MI penalty."""
  mi = row.removeprefix("real_") == "mim"
  return tuple((k, d) for k, d in space if mi or not k.startswith(("club.", "loss.w_mi")))


# Real CMU-MOSI. Each row's data: "utterance" (mosi_utterance-style files, their own
# split) or "standard" (label.csv on the standard folds); docs/results.sh reads their
# folders from $MOSI_UTTERANCE and $MOSI_STANDARD.
REAL_SEEDS = 5
REAL_TRIALS = 8
REAL_TUNED = ("real_mim", "real_none", "real_complete_mib")
# Length-1 audio and vision frames: dropping frames or adding noise per frame says nothing
# more than removing the modality does.
REAL_CONDITIONS = ("remove:text", "remove:audio", "remove:vision")
REAL_SPACE_LR = (("optim.main_lr", "loguniform(0.0002, 0.005)"),
                 ("optim.bert_lr", "loguniform(1e-05, 0.0002)"))


def _real(data: str, model: str, *overrides):
  smoke = lambda base: ",smoke" if base == "smoke" else ""
  return _make_row(lambda base: real.get_config(f"{data},{model}{smoke(base)}"), *overrides)


_NONE, _ORTHOGONAL = ablations.ABLATIONS["none"], ablations.ABLATIONS["orthogonal"]
REAL_ROWS = {
    "real_text": ("utterance", _real("utterance", "text")),
    "real_mim": ("utterance", _real("utterance", "mird")),
    "real_none": ("utterance", _real("utterance", "mird", _NONE)),
    "real_orthogonal": ("utterance", _real("utterance", "mird", _ORTHOGONAL)),
    "real_complete_mib": ("utterance", _real("utterance", "mib_complete")),
    "real_early_mib": ("utterance", _real("utterance", "mib_early")),
    "real_late_mib": ("utterance", _real("utterance", "mib_late")),
    "real_mim_novision": ("utterance", _real("utterance_novision", "mird")),
    "real_none_novision": ("utterance", _real("utterance_novision", "mird", _NONE)),
    "real_complete_mib_novision": ("utterance", _real("utterance_novision", "mib_complete")),
    "real_text_standard": ("standard", _real("text", "text")),
}
REAL_TABLES = {
    "real_models": ("Real MOSI: every model, three modalities", "real_mim",
                    ("real_text", "real_mim", "real_none", "real_orthogonal",
                     "real_complete_mib", "real_early_mib", "real_late_mib")),
    "real_novision": ("Real MOSI: trained without vision", "real_mim_novision",
                      ("real_mim_novision", "real_none_novision",
                       "real_complete_mib_novision")),
    "real_standard": ("Real MOSI transcripts on the standard folds", "real_text_standard",
                      ("real_text_standard",)),
}


def data_of(row: str) -> str:
  """"synthetic", or the real data a row reads ("utterance" or "standard")."""
  return REAL_ROWS[row][0] if row in REAL_ROWS else "synthetic"


def tables() -> dict:
  """Every table, synthetic then real: {name: (title, reference row, rows)}."""
  return {**TABLES, **REAL_TABLES}


def _real_space(row: str) -> tuple:
  """configs/sweeps.py's MOSI space for the row's family with REAL_SPACE_LR's rates, less
  the keys the row never reads."""
  if row.endswith("mib"):
    return tuple({**dict(sweeps.space("mosi", "mib_complete")), **dict(REAL_SPACE_LR)}.items())
  return _read_by(row, {**dict(sweeps.space("mosi", "mird")), **dict(REAL_SPACE_LR)}.items())


def get_config(arg: str | None = None):
  """`[tune_]ROW[,smoke]`; no argument: mim; `smoke`: mim on the demo's smoke base (a
  real row's smoke: configs/real.py's tiny random BERT)."""
  tokens = [t for t in (arg or "mim").split(",") if t]
  smoke = "smoke" in tokens
  name = ([t for t in tokens if t != "smoke"] or ["mim"])[0]
  row = name[len("tune_"):] if name.startswith("tune_") else name
  tuned = TUNED + REAL_TUNED
  if (row not in ROWS and row not in REAL_ROWS or (name.startswith("tune_") and row not in
                                                   tuned) or len(tokens) > 1 + smoke):
    raise ValueError(f"configs/research.py needs [tune_]ROW[,smoke] (ROW one of "
                     f"{', '.join([*ROWS, *REAL_ROWS])}; tune_ for {', '.join(tuned)}); "
                     f"got {arg!r}")
  is_real = row in REAL_ROWS
  config = (REAL_ROWS[row][1] if is_real else ROWS[row])("smoke" if smoke else BASE)
  config.num_seeds = REAL_SEEDS if is_real else SEEDS
  config.robustness.enabled = True
  if is_real:
    config.robustness.conditions = REAL_CONDITIONS
  if name.startswith("tune_"):
    s = config.sweep
    s.space = _real_space(row) if is_real else _space(row)
    s.trials = REAL_TRIALS if is_real else TRIALS
    s.confirm_seeds = CONFIRM_SEEDS
    s.pruner, s.pruner_warmup_epochs = "median", 1
  return config
