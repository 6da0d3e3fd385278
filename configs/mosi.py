r"""MIRD on CMU-MOSI (MMSA `unaligned_50.pkl` features), the base config every other file edits.

  python run.py --config=configs/mosi.py --workdir=$HOME/runs/mosi
  python run.py --config=configs/mosi.py:smoke --workdir=/tmp/mosi_smoke   # tiny, CPU

Every key the code reads is defined here with its default; the code reads them by
attribute, and the config is locked, so a misspelled key fails. Defaults follow the public
MIRD code except where it has a defect; docs/differences.md lists every difference and the
key that restores the public behaviour where there is one.

No unlabelled data here: the MMSA releases carry no unlabelled pool, so this config trains
MIRD without one (the paper's "w/o unlabelled data" setting). configs/mosi_paper.py is the
paper's own setting (MIRD-layout features and an unlabelled pool).
"""

import ml_collections

ConfigDict = ml_collections.ConfigDict


def _data() -> ConfigDict:
  d = ConfigDict()
  d.name = "cmu_mosi"  # TFDS builder: cmu_mosi | cmu_mosei | synthetic_mosi.
  # Raw file format: mmsa (aligned_50/unaligned_50.pkl) | mird | mag (MAG-BERT/MIB pickle) |
  # label_csv (an MMSA label.csv, alone or joined with CMU-SDK .csd files; configs/real.py).
  d.format = "mmsa"
  d.file = "unaligned_50.pkl"  # Labelled file, looked up in manual_dir.
  # format=label_csv: the .csd computational sequences joined with label.csv, in manual_dir;
  # "" = none, and a modality without a file is one zero frame (a text-only dataset).
  d.audio_csd = ""
  d.vision_csd = ""
  # The label .csd whose row k-1 of a video gives segment <video>_k's interval (frame-level
  # files need it) and whose labels must agree with label.csv's; "" = the intervals of the
  # first feature file's rows (utterance-level files: one row per segment).
  d.label_csd = ""
  d.split = "file"  # label_csv: file (its mode column) | standard (the SDK's published folds).
  d.missing_segments = "refuse"  # A label.csv segment absent from a .csd: refuse | drop.
  # z-score each audio and vision feature with the train split's statistics (valid frames),
  # applied to every split; real features are on wildly different scales.
  d.standardize = False
  d.unlabeled_file = ""  # Unlabelled pool (MIRD flat dict) in manual_dir; "" = none.
  # Ground-truth factors (the synthetic benchmark's factors.npz) in manual_dir, for the
  # ridge probes of the disentanglement check; "" = none (real data has none).
  d.factors_file = ""
  d.data_dir = ""  # TFDS data_dir; "" = <workdir>/tfds.
  d.manual_dir = ""  # Where the user put the raw files; "" = <data_dir>/downloads/manual.
  d.metric_dataset = "mosi"  # Which metric suite: mosi | mosei | sims.
  d.label_min = -3.0
  d.label_max = 3.0
  # Largest |feature value| accepted (after non-finite values are zeroed): a file with a
  # larger one stops before any work, since squares of such values overflow float32 in
  # the reconstruction losses. Real COVAREP/Facet/OpenFace features stay below ~1e4.
  d.max_abs_feature = 1e6
  # Padded lengths and feature dims are fixed per dataset so the step compiles once.
  d.text_len = 50
  d.audio_len = 375  # MOSI unaligned COVAREP frames.
  d.audio_dim = 5
  d.vision_len = 500  # MOSI unaligned Facet frames.
  d.vision_dim = 20
  # Length buckets (docs/design.md): each batch is cut, per modality, to the smallest bucket
  # that holds its longest real sequence (the padded length is always the last bucket), so
  # it pays only for real tokens and frames; the step compiles once per combination met.
  # () = never cut. Text: MOSI's transcripts have a median of 13 WordPiece tokens, 90% at
  # most 27. Audio and vision are left whole until measured on the MMSA files.
  d.text_buckets = (16, 32)
  d.audio_buckets = ()
  d.vision_buckets = ()
  # Group the train batches by length: each epoch's shuffle is sorted by bucket within
  # chunks of group_chunk batches and the batches shuffled (seeded; resume stays exact).
  # Needs a bucket; fewer padded positions, batches less random (docs/results.md). A random
  # batch of MOSI transcripts nearly always holds a long one: cutting alone saves ~5%.
  d.group_by_length = True
  d.group_chunk = 16  # Batches per sorted chunk; 0 = the whole epoch.
  d.batch_size = 48  # Global labelled batch, split over all devices of all hosts.
  d.eval_batch_size = 128  # Eval batches are padded with a mask, never dropped.
  # Unlabelled draws per step = ratio * batch_size; 0 = none. A ratio > 0 needs
  # unlabeled_file (the run stops before any work otherwise). The public code used 2.
  d.unlabeled_ratio = 0.0
  # The fewer-labels protocol: the share of the train split that keeps its labels, a
  # subset drawn with label_subset_seed alone (the same for every training seed); 1 = all.
  d.label_fraction = 1.0
  d.label_subset_seed = 0
  # label_fraction < 1: the withheld train examples join the unlabelled pool (labels
  # never read), so the run sees the full benchmark's inputs and fewer of its labels.
  d.unlabel_rest = True
  d.prefetch = 4  # grain read threads, and batches prefetched ahead of the step.
  return d


def _bert() -> ConfigDict:
  b = ConfigDict()
  # Local directory with config.json + model.safetensors + tokenizer files, or a hub id
  # (resolved through the transformers cache only when the user has network).
  b.path = "bert-base-uncased"
  b.pretrained = True  # False: random init with the `random` sizes below.
  # False: only the language BERT (bert_l) loads the checkpoint; the modality-agnostic
  # WSA-BERT (bert_s) keeps its random N(0, 0.02) start, as the public MIRD code's does.
  b.pretrained_agnostic = True
  b.random = ConfigDict()  # Architecture used when pretrained is False.
  b.random.vocab_size = 30522
  b.random.hidden_size = 768
  b.random.num_layers = 12
  b.random.num_heads = 12
  b.random.intermediate_size = 3072
  b.random.max_position = 512
  b.random.type_vocab_size = 2
  b.hidden_dropout = 0.1  # BERT's own dropouts (hidden and attention probabilities).
  b.attention_dropout = 0.1
  return b


def _mib() -> ConfigDict:
  """MIB (model.name=mib; configs/mib_mosi.py): defaults are the public MIB code's."""
  b = ConfigDict()
  b.variant = "complete"  # early (E-MIB) | late (L-MIB) | complete (C-MIB).
  b.fusion = "concat"  # concat | tensor (TFN outer product) | sum | product.
  b.width = 50  # Conv1d and Transformer width of each modality's representation.
  b.bottleneck = 50  # Size of each bottleneck's z.
  b.hidden = 1024  # Hidden width of each bottleneck's mean and scale networks.
  b.beta = 1e-3  # Weight of each bottleneck's KL; 0 is the paper's B-MIB (no bottleneck).
  b.kl_reduce = "mean"  # KL averaged over z's dims (the public code) | sum (the analytic KL).
  b.scale_shift = 5.0  # sigma = softplus(pre-activation - scale_shift).
  b.heads = 5  # Audio/vision Transformer encoders.
  b.layers = 3
  b.attn_dropout = 0.5
  b.relu_dropout = 0.3
  b.res_dropout = 0.3
  b.embed_dropout = 0.2
  # Evaluate with sampled z (the public code) instead of the posterior mean; the noise
  # comes from a key fixed by each batch's first example, so results still repeat.
  b.sample_at_eval = False
  # How each encoder's sequence becomes one vector: mean (the masked mean over the valid
  # steps) | last (the last time step, the public code's readout).
  b.readout = "mean"
  b.init = "flax"  # flax | public (the public init_weights(): every Linear N(0, 0.02)).
  b.layer_norm_eps = 1e-6  # The Transformer encoders' LayerNorms (torch's is 1e-5).
  # fusion=tensor's head: ours (ReLU, ReLU, linear) | public (the public variant file's:
  # dropout 0.5 on the outer product, then Linear layers with tanh x 3 for C-MIB, none,
  # tanh, ReLU for E-MIB and L-MIB).
  b.tensor_head = "ours"
  b.tensor_dropout = 0.5  # tensor_head=public: dropout on the outer product.
  # Weight of the fused prediction's task term relative to the unimodal ones; the public
  # code counts it twice (2.0).
  b.fused_task_weight = 1.0
  return b


def _model() -> ConfigDict:
  m = ConfigDict()
  m.name = "mird"  # mird | mib: the model family (the keys below are MIRD's, model.mib MIB's).
  m.d_z = 64  # Size of z_s, z_l, z_a, z_v.
  m.lstm_hidden = 64  # Audio/vision encoder LSTM width (av_encoder=lstm).
  # Audio/vision encoders, either family: lstm (MIRD's last LSTM state) | transformer (MIB's
  # Transformer, sized by model.mib's width/heads/layers/dropouts and read out by its readout).
  m.av_encoder = "lstm"
  m.regressor_hidden = 64
  m.fusion = "wsa"  # wsa (sparsemax word-wise alignment) | wa (softmax).
  m.beta_shift = 1.0  # WSA norm-ratio scale: alpha = min(|e| / |h| * beta_shift, 1).
  m.constraint = "mim"  # mim (CLUB MI minimisation) | orthogonal | none: the NC/OC/MIM ablation.
  # Both BERTs start from the same weights; True makes them one module (one set of params).
  m.share_bert = False
  m.text_recon_target = "vocab_logits"  # vocab_logits (faithful) | bert_embeddings (cheap).
  m.latent_dropout = 0.5  # After each BERT's pooled output.
  m.fusion_dropout = 0.5  # Inside WSA, after its LayerNorm.
  m.regressor_dropout = 0.5
  # flax: Flax's default initialisers; pytorch: torch's (U(+-1/sqrt(fan_in)) for Linear,
  # U(+-1/sqrt(hidden)) for LSTM), as the public code gets. BERT and WSA: N(0, 0.02) in both.
  m.init_scheme = "flax"
  # LSTM cell layout: flax (one bias per gate) | torch (torch.nn.LSTMCell's two, bias_ih and
  # bias_hh, which Adam moves separately, so the summed bias moves twice as far per step).
  m.lstm_cell = "flax"
  m.dtype = "float32"  # Compute dtype (bfloat16 for TPU/GPU); params stay float32.
  m.mib = _mib()
  return m


def _club() -> ConfigDict:
  c = ConfigDict()
  # Width of each mu/logvar net's hidden layer. The public code passes 32 and halves it.
  c.hidden = 16
  c.steps = 5  # Estimator updates per main update; 0 freezes the estimators.
  c.lr = 1e-3  # Adam, no weight decay.
  # True recomputes the latents with fresh dropout for each estimator update (the public
  # code's costly way); False reuses the step's stop-gradient latents.
  c.refresh_latents = False
  # Under constraint none/orthogonal, still fit the estimators (never in the loss) so that
  # every ablation reports the same CLUB MI curves; False drops them (and their cost).
  c.monitor = True
  return c


def _loss() -> ConfigDict:
  l = ConfigDict()
  l.task = "mse"  # mse | l1, on labelled examples only.
  # log: sum of log(term) for task and reconstructions plus the weighted MI/orthogonality
  # terms (the public code); weighted: sum of weight * term for every term.
  l.combine = "log"
  l.log_eps = 1e-8  # log(term + eps) keeps a zero loss finite.
  # Weight 0 removes a term and its compute.
  l.w_task = 1.0
  l.w_recon_text = 1.0
  l.w_recon_audio = 1.0
  l.w_recon_vision = 1.0
  l.w_mi = 1.0  # Each of the six CLUB upper bounds (constraint=mim).
  l.w_orthogonal = 1.0  # Each (z_s, z_m) pair (constraint=orthogonal).
  # Our extension, not the paper's: the CLUB estimators, MI bounds and orthogonality penalty
  # read latents standardised over the batch, so no penalty can be met by shrinking a
  # latent (MIRD only; exact gradient accumulation cannot split a batch statistic of this).
  l.scale_free = False
  return l


def _optim() -> ConfigDict:
  o = ConfigDict()
  # Ordered (full-match regex on the "a/b/kernel" parameter path, group); first match wins
  # and every parameter must match one rule.
  o.groups = (
      (r"(bert_l|bert_s|bert)/.*", "bert"),
      (r"club_.*", "club"),
      (r".*", "main"),
  )
  o.bert_lr = 1e-5  # AdamW peak learning rates (public code: 1e-5 for everything).
  o.main_lr = 1e-5
  o.weight_decay = 0.01  # bert and main, never on biases or LayerNorm.
  o.b1 = 0.9
  o.b2 = 0.999
  o.eps = 1e-6  # transformers' AdamW default, which the public code used.
  # optax: epsilon added after Adam's bias correction, decay of the pre-update param.
  # transformers: its AdamW's arithmetic (the public code's): epsilon before the bias
  # correction (effectively eps / sqrt(1 - b2^t)), decay of the updated param.
  o.adamw = "optax"
  # warmup_decay: linear warmup over warmup_frac of all steps, then linear decay to 0.
  # public_ramp: the public code's (swapped-argument) schedule, a linear ramp to the peak
  # over the whole run, for the ablation that reproduces it. constant: no schedule (MIB).
  o.schedule = "warmup_decay"
  o.warmup_frac = 0.1
  o.grad_clip = 0.0  # Global-norm clip for bert+main; 0 disables (the public code has none).
  # Microbatches per update: the gradient of the whole batch (data.batch_size labelled +
  # their unlabelled draws) computed k parts at a time, for less memory and one extra
  # forward; exact without dropout (and MIB's bottleneck noise), whose draws differ per
  # microbatch. Both batches must split into k x the device count.
  o.accumulate_steps = 1
  return o


def _train() -> ConfigDict:
  t = ConfigDict()
  t.epochs = 100
  t.patience = 20  # Early stopping: epochs without validation improvement.
  t.select_metric = "MAE"  # Validation metric for model selection (any key of the suite).
  t.select_mode = "min"  # min | max.
  t.log_every_steps = 20
  t.keep_checkpoints = 2  # "latest" checkpoints kept; the best one is kept separately.
  # How a rerun starts in a workdir that holds a run (mird_jax/runs/restart.py): auto (resume
  # from the last committed step) | from_scratch (move that run to DIR/discarded/<n>/ and
  # train again) | a step number in ckpt/ (resume from that older checkpoint). Not part of
  # the run's identity: any rerun may set it.
  t.restart = "auto"
  t.distributed = False  # True calls jax.distributed.initialize() (TPU pods, GPU clusters).
  # Devices to train on: 0 = every device of every host; N = the first N devices of this
  # (single) host, e.g. 1 to reproduce a one-device run exactly on a multi-device machine.
  t.num_devices = 0
  # Also fit the closed-form ridge probes (mird_jax/evaluation/probes.py) and report them beside
  # the model: loads every split into memory, so meant for the synthetic demo.
  t.report_probes = False
  return t


def _diagnostics() -> ConfigDict:
  g = ConfigDict()
  # Per epoch, every loss term and each pair's CLUB bound on the whole validation split
  # (metrics.jsonl); at the end, curves.png, latents.png and the k-NN MI (and, with
  # data.factors_file, the ridge probes to the true factors) in results.json.
  g.enabled = True
  g.knn_k = 3  # Neighbours of the KSG MI estimator.
  # Each latent is standardised and reduced to this many principal components before the
  # k-NN MI (the estimator is biased towards 0 in many dimensions); 0 = all of them.
  g.knn_dims = 8
  g.tsne = True  # Also a t-SNE panel in latents.png when scikit-learn is installed.
  return g


def _robustness() -> ConfigDict:
  """The test split scored again under corrupted inputs (mird_jax/runs/robustness.py;
  mird_jax/evaluation/corruptions.py): robustness.json beside results.json."""
  r = ConfigDict()
  # True: after --mode=train and after each seed of --mode=multiseed (whose summary then
  # aggregates it); --mode=robustness scores a finished run or protocol either way.
  r.enabled = False
  # Besides the clean input: remove:text|audio|vision (the modality absent), noise:SIGMA
  # (Gaussian, SIGMA x each feature's std, on audio and vision), drop:RATE (frames dropped).
  r.conditions = ("remove:text", "remove:audio", "remove:vision", "noise:0.5", "noise:1.0",
                  "drop:0.25", "drop:0.5")
  r.seed = 0  # The noise and frame-drop draws (the same for every training seed).
  return r


def _sweep() -> ConfigDict:
  """--mode=sweep (mird_jax/research/sweep.py; docs/sweeps.md): an Optuna search over
  `space`, each trial an ordinary run in <workdir>/trial_<n>/, selected on validation."""
  s = ConfigDict()
  # ((dotted config key, distribution), ...): uniform(lo, hi) | loguniform(lo, hi) |
  # quniform(lo, hi, step) | int(lo, hi[, step]) | logint(lo, hi) | choice(v1, v2, ...).
  # configs/sweeps.py has ready spaces; () = nothing to search (--mode=sweep refuses it).
  s.space = ()
  s.trials = 50  # Trials that end (complete, pruned or failed), over every worker.
  s.sampler = "tpe"  # tpe | random, seeded per trial from (seed, trial number).
  s.seed = 0  # The sampler's seed (the training seed is config.seed, the same every trial).
  s.startup_trials = 5  # TPE: random trials before it models the results.
  s.metric = ""  # Validation metric to optimise; "" = train.select_metric.
  s.direction = ""  # minimize | maximize; "" = train.select_mode's (min/max).
  # none | median: stop a trial whose validation metric after an epoch is worse than the
  # median of earlier trials at that epoch (after startup_trials trials and warmup epochs).
  s.pruner = "none"
  s.pruner_warmup_epochs = 1
  # Any SQLAlchemy URL Optuna's RDBStorage takes, e.g. postgresql://user:pw@host/db, for
  # workers on several machines; "" = sqlite:///<workdir>/sweep.db.
  s.storage = ""
  s.study_name = ""  # "" = "sweep-" + a hash of the config, so each config has its own.
  # After the search: the best trial's config and the base config each over this many
  # seeds (seed+1 .. seed+n, none of them the search's) with the paired test; 0 = none.
  s.confirm_seeds = 0
  return s


def get_config(arg: str | None = None) -> ConfigDict:
  config = ConfigDict()
  config.seed = 0
  config.num_seeds = 5  # Multi-seed runs use seeds seed .. seed+num_seeds-1, mean +- std.
  config.data = _data()
  config.bert = _bert()
  config.model = _model()
  config.club = _club()
  config.loss = _loss()
  config.optim = _optim()
  config.train = _train()
  config.diagnostics = _diagnostics()
  config.robustness = _robustness()
  config.sweep = _sweep()
  if arg == "smoke":
    apply_smoke(config)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r} for configs/mosi.py; expected smoke")
  return config


def apply_smoke(config: ConfigDict) -> None:
  """Shrinks a config to seconds on one CPU: tiny random BERT, short sequences."""
  config.bert.pretrained = False
  config.bert.random.vocab_size = 512
  config.bert.random.hidden_size = 32
  config.bert.random.num_layers = 2
  config.bert.random.num_heads = 2
  config.bert.random.intermediate_size = 64
  config.bert.random.max_position = 64
  config.data.text_len = 16
  config.data.audio_len = 24
  config.data.vision_len = 20
  # One program per run: each extra bucket combination is a compile, which costs a smoke
  # run more than its padding.
  config.data.text_buckets = config.data.audio_buckets = config.data.vision_buckets = ()
  config.data.group_by_length = False
  config.data.batch_size = 8
  config.data.eval_batch_size = 16
  if config.data.unlabeled_file:
    config.data.unlabeled_ratio = 1.0
  config.model.d_z = 16
  config.model.lstm_hidden = 16
  config.model.regressor_hidden = 16
  config.club.hidden = 8
  config.club.steps = 2
  config.train.epochs = 2
  config.train.patience = 2
  config.train.log_every_steps = 1
  config.num_seeds = 2
  config.diagnostics.tsne = False
