r"""Real CMU-MOSI from the public CMU-SDK and MMSA files, with an offline pretrained encoder:
`DATA,MODEL[,paper][,smoke]`.

  python run.py --config=configs/real.py:utterance,mird --workdir=DIR \
      --config.data.manual_dir=MOSI_FILES

DATA (the files in data.manual_dir; docs/real_data.md says where each comes from):
  text       label.csv (video_id, clip_id, text, label, mode) on the SDK's standard folds
             (52/10/31 videos, 1284/229/686 segments): transcripts only; audio and vision
             are absent (one zero frame each).
  utterance  label.csv with its own split (only it keeps the test videos unseen by the
             feature extractors) joined with CMU_MOSI_Utterance_openSMILE.csd (audio, 73-d)
             and CMU_MOSI_Utterance_3DCNN.csd (vision, 100-d): one vector per segment, so
             audio and vision are length-1 sequences. The 3D-CNN features were fitted on
             the train videos' labels.
  utterance_novision  the same without the vision file (its features are label-fitted).
MODEL: mird | mib_complete | mib_early | mib_late | text (the BERT branch alone).
No argument: utterance,mird.
paper: the paper's optimisation instead of the defaults here (every learning rate 1e-5, 100
  epochs, patience 20): what the authors ran on a GPU, far beyond a CPU budget.
smoke: a tiny random BERT over the same vocabulary, for tests.

Both BERTs (and the tokenizer) are all-MiniLM-L6-v2 from its installed package, offline;
--config.bert.path=DIR selects another, e.g. a local bert-base-uncased (the paper's).
The defaults here learn within about an hour a run on a 2-core CPU: pretrained-encoder
fine-tuning rates (BERT 5e-5, the rest 1e-3, warmup then linear decay), 8 epochs with
early stopping on validation MAE, features standardised with train-split statistics.
"""

from configs import mib_mosi
from configs import mosi

DATASETS = ("text", "utterance", "utterance_novision")
MODELS = ("mird", "mib_complete", "mib_early", "mib_late", "text")
LABEL_CSV = "label.csv"
AUDIO_CSD = "CMU_MOSI_Utterance_openSMILE.csd"
VISION_CSD = "CMU_MOSI_Utterance_3DCNN.csd"


def _parse(arg: str | None):
  # No argument: utterance,mird; `smoke` alone: utterance,mird,smoke.
  arg = {None: "utterance,mird", "": "utterance,mird", "smoke": "utterance,mird,smoke"}.get(
      arg, arg)
  tokens = [t for t in arg.split(",") if t]
  flags = {t for t in tokens if t in ("paper", "smoke")}
  rest = [t for t in tokens if t not in flags]
  if len(rest) != 2 or rest[0] not in DATASETS or rest[1] not in MODELS:
    raise ValueError(f"configs/real.py needs DATA,MODEL[,paper][,smoke] with DATA one of "
                     f"{', '.join(DATASETS)} and MODEL one of {', '.join(MODELS)}; got {arg!r}")
  return rest[0], rest[1], "paper" in flags, "smoke" in flags


def _data(config, dataset: str) -> None:
  d = config.data
  d.format = "label_csv"
  d.file = LABEL_CSV
  d.text_len = 50  # Keeps 99% of MOSI's transcripts whole (MiniLM's WordPiece).
  # Transcripts have a median of 13 tokens: batches cut to these (50 the last) and grouped
  # by length compute a fraction of the padded positions (docs/design.md).
  d.text_buckets = (8, 16, 24, 32, 40)
  d.group_by_length = True
  if dataset == "text":
    d.split = "standard"
    d.audio_len = d.audio_dim = d.vision_len = d.vision_dim = 1
  else:
    d.split = "file"
    d.audio_csd = AUDIO_CSD
    d.audio_len, d.audio_dim = 1, 73
    d.vision_len, d.vision_dim = 1, 100
    if dataset == "utterance_novision":
      d.vision_csd = ""
      d.vision_dim = 1
    else:
      d.vision_csd = VISION_CSD
  d.standardize = True
  d.batch_size = 32
  # Ridge probes of each modality (text: bag of words) beside the model at the end; the
  # text-only set has no features to probe.
  config.train.report_probes = dataset != "text"


def _model(config, model: str) -> None:
  if model.startswith("mib_"):
    mib_mosi.apply_mib(config, model.split("_")[1])
  elif model == "text":
    config.model.name = "text"
    config.club.monitor = False
    config.optim.groups = ((r"bert/.*", "bert"), (r".*", "main"))
  config.bert.path = "all-MiniLM-L6-v2"
  config.bert.pretrained = True


def _fast_optimisation(config) -> None:
  """Pretrained-encoder fine-tuning that learns in a CPU budget."""
  o = config.optim
  o.bert_lr = 5e-5
  o.main_lr = 1e-3
  o.schedule = "warmup_decay"
  o.warmup_frac = 0.1
  config.train.epochs = 8
  config.train.patience = 3


def _paper_optimisation(config) -> None:
  config.optim.bert_lr = config.optim.main_lr = 1e-5
  config.train.epochs = 100
  config.train.patience = 20


def get_config(arg: str | None = None):
  dataset, model, paper, smoke = _parse(arg)
  config = mosi.get_config()
  _data(config, dataset)
  _model(config, model)
  if paper:
    _paper_optimisation(config)
  else:
    _fast_optimisation(config)
  config.diagnostics.tsne = False  # Its ~15 s a run buys little on 487 test segments.
  if smoke:
    _smoke(config)
  return config


def _smoke(config) -> None:
  """A tiny random BERT over the tokenizer's vocabulary (ids from the real tokenizer)."""
  vocab = 30522  # all-MiniLM-L6-v2 and bert-base-uncased.
  mosi.apply_smoke(config)
  if config.model.name == "mib":
    mib_mosi.apply_mib_smoke(config)
  config.bert.random.vocab_size = vocab
  config.data.text_len = 16
  config.data.audio_len = config.data.vision_len = 1
