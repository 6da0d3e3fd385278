r"""The built-in demo: full MIRD on the synthetic benchmark, generated into the workdir.

  python run.py --config=configs/demo.py --workdir=/tmp/mird_demo
  python run.py --config=configs/demo.py:smoke --workdir=/tmp/mird_demo_smoke
  python run.py --config=configs/demo.py:table --mode=multiseed --workdir=/tmp/mird_table

No network and no downloaded data: data_pipelines/synthetic.py writes MMSA-format pickles
(with an unlabelled pool and the ground-truth factors) into <workdir>/raw on first use.
Both BERTs are small and randomly initialised over the synthetic corpus's token ids.
"""

import ml_collections

from configs import mosi


def get_config(arg: str | None = None):
  config = mosi.get_config()
  config.data.name = "synthetic_mosi"
  config.data.file = "unaligned_50.pkl"
  config.data.unlabeled_file = "unlabeled.pkl"
  config.data.factors_file = "factors.npz"
  config.data.text_len = 24
  config.data.audio_len = 60
  config.data.vision_len = 50
  config.data.batch_size = 32
  config.data.unlabeled_ratio = 1.0
  # Whole batches: the unlabelled draws (as many as the labelled rows, run in the same
  # batch) are random, so a batch nearly always meets the padded length of the demo's
  # uniform lengths and buckets would only add compiles (docs/performance.md).
  config.data.text_buckets = config.data.audio_buckets = config.data.vision_buckets = ()
  config.data.group_by_length = False

  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.seed = 0  # The generator's seed (independent of the training seed).
  # MOSI-sized valid/test; a train split ~2x MOSI's lets the small from-scratch BERTs
  # generalise within the demo's few minutes.
  config.data.synthetic.n_train = 3000
  config.data.synthetic.n_valid = 229
  config.data.synthetic.n_test = 686
  config.data.synthetic.n_unlabeled = 3000
  config.data.synthetic.vocab_size = 1000  # Token ids the synthetic transcripts use.
  config.data.synthetic.neg_inf_frac = 0.001  # Share of audio values set to -inf.

  config.bert.pretrained = False
  config.bert.path = ""  # Unused: the synthetic data carries token ids, no tokenizer needed.
  config.bert.random.vocab_size = 1000
  config.bert.random.hidden_size = 64
  config.bert.random.num_layers = 2
  config.bert.random.num_heads = 4
  config.bert.random.intermediate_size = 128
  config.bert.random.max_position = 64
  config.optim.bert_lr = 5e-4  # Random small BERTs train from scratch: larger steps.
  config.optim.main_lr = 1e-3
  config.train.epochs = 12
  config.train.patience = 4
  config.train.report_probes = True
  if arg == "table":
    # The README results table (configs/ablations.py:table,*): 8 configs x 3 seeds in
    # about an hour on 2 CPU cores.
    config.train.epochs = 4
    config.train.patience = 2
    config.num_seeds = 3
    config.diagnostics.tsne = False  # The PCA panel only: t-SNE costs ~15 s a run.
  elif arg == "smoke":
    mosi.apply_smoke(config)
    config.data.synthetic.n_train = 48
    config.data.synthetic.n_valid = 20
    config.data.synthetic.n_test = 20
    config.data.synthetic.n_unlabeled = 32
    config.data.synthetic.vocab_size = 512
  elif arg:
    raise ValueError(f"unknown config variant {arg!r} for configs/demo.py; expected smoke "
                     "or table")
  return config
