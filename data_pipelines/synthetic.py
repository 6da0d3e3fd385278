r"""The synthetic benchmark: MMSA-format pickles whose ground truth is known.

  python -m data_pipelines.synthetic --out DIR [--n_train 1284 --seed 0 --format mmsa]

Writes into DIR:
  unaligned_50.pkl  labelled train/valid/test in the MMSA layout (format mmsa), or
  mird.pkl          the MIRD layout (raw_text/audio/video/labels; format mird)
  mosi.pkl          the MAG-BERT/MIB word-aligned layout (format mag): per word, the mean
                    of its share of the valid frames, as word-aligned features are made
  unlabeled.pkl     a flat unlabelled pool in the same layout (MMSA keys for format mag,
                    which has no pool of its own)
  factors.npz       the ground-truth factors of every example, keyed by id
  vocab.txt         the WordPiece vocabulary of the transcripts (BERT's special ids)
  synthetic_files.json  what the generator wrote there (name -> SHA-256)
The generator replaces only files it wrote itself (listed in synthetic_files.json, unchanged
since): any other file of those names stops it with a DataError naming the file, so a
folder holding the user's own data is never overwritten.

Generative model, per example (all factors standard normal):
  s            shared sentiment, present in every modality
  p_t, p_a, p_v  a label-relevant private factor per modality
  n_t, n_a, n_v  label-irrelevant nuisance (2-d) per modality
  label = quantise(s + 0.8 (p_t + p_a + p_v) + 0.3 noise) on the MOSI grid (0.2 steps),
  clipped to [-3, 3]. Any one modality sees s and its own p only, so all three together
  predict the label clearly better than any one (tests/data_pipelines/test_synthetic.py
  measures it).
Audio/vision frames are a fixed linear mix of (s, p_m) and n_m plus per-frame noise, for a
random number of frames, then exact zeros (back-padding). Transcripts draw "sentiment
words" from buckets ordered by s + p_t, "nuisance words" by n_t, and filler words.
"""

import argparse
import dataclasses
import json
import pathlib
import pickle
import sys

import numpy as np

from data_pipelines import checks
from data_pipelines import example

PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
# Per-token text features of the MMSA layout's `text` key (what MMSA's loader feeds every
# model that does not use BERT): a fixed random vector per vocabulary id, zero on padding.
TEXT_FEATURE_DIM = 32
FIRST_WORD = 104  # BERT's layout: [PAD], [unused0..98], [UNK], [CLS], [SEP], [MASK], words.
N_BUCKETS = 9  # Word buckets per factor, for values in [-2, 2].
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  n_train: int = 1284
  n_valid: int = 229
  n_test: int = 686
  n_unlabeled: int = 1284
  seed: int = 0
  text_len: int = 50
  audio_len: int = 375
  audio_dim: int = 5
  vision_len: int = 500
  vision_dim: int = 20
  vocab_size: int = 30522
  neg_inf_frac: float = 0.0  # Share of valid audio values replaced by -inf.
  frame_noise: float = 1.5  # Per-frame, per-channel noise std.

  def __post_init__(self):
    if self.vocab_size < FIRST_WORD + 4 * N_BUCKETS:
      raise ValueError(f"vocab_size {self.vocab_size} too small: need >= "
                       f"{FIRST_WORD + 4 * N_BUCKETS}")
    if self.text_len < 3:
      raise ValueError(f"text_len {self.text_len} < 3 leaves no room for a word")

  @classmethod
  def from_config(cls, data_config) -> "SyntheticSpec":
    s = data_config.synthetic
    return cls(n_train=s.n_train, n_valid=s.n_valid, n_test=s.n_test,
               n_unlabeled=s.n_unlabeled, seed=s.seed, text_len=data_config.text_len,
               audio_len=data_config.audio_len, audio_dim=data_config.audio_dim,
               vision_len=data_config.vision_len, vision_dim=data_config.vision_dim,
               vocab_size=s.vocab_size, neg_inf_frac=s.neg_inf_frac)


def vocab_tokens(vocab_size: int) -> list[str]:
  tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                              "[MASK]"]
  return tokens + [f"w{i}" for i in range(FIRST_WORD, vocab_size)]


class _World:
  """What is fixed for a dataset (mixing matrices, word buckets), drawn from the seed."""

  def __init__(self, spec: SyntheticSpec):
    rng = np.random.default_rng([spec.seed, 0])
    self.mix = {}
    for m, d in (("audio", spec.audio_dim), ("vision", spec.vision_dim)):
      signal = rng.normal(size=(d, 2))  # Columns: shared, private.
      nuisance = 1.5 * rng.normal(size=(d, 2))
      bias = rng.normal(size=(d,))
      self.mix[m] = (signal, nuisance, bias)
    words = np.arange(FIRST_WORD, spec.vocab_size)
    n_sent, n_nuis = int(0.4 * len(words)), int(0.2 * len(words))
    self.sentiment_buckets = np.array_split(words[:n_sent], N_BUCKETS)
    self.nuisance_buckets = np.array_split(words[n_sent:n_sent + n_nuis], N_BUCKETS)
    self.filler = words[n_sent + n_nuis:]
    # Its own stream, so that adding it changed none of the other draws.
    self.text_features = np.random.default_rng([spec.seed, 1]).normal(
        size=(spec.vocab_size, TEXT_FEATURE_DIM)).astype(np.float32)


def _lengths(rng, n, t, low):
  return rng.integers(max(low, t // 4), t + 1, size=n).astype(np.int32)


def _frames(rng, world, modality, shared, private, nuisance, length, t, spec):
  signal, mix_n, bias = world.mix[modality]
  mean_NxD = np.stack([shared, private], -1) @ signal.T + nuisance @ mix_n.T + bias
  x = mean_NxD[:, None, :] + spec.frame_noise * rng.normal(size=(len(shared), t, len(bias)))
  x = np.where(x == 0, 1e-3, x)  # No exact zero inside the valid region (getLengths).
  valid_NxT = np.arange(t)[None, :] < length[:, None]
  return np.where(valid_NxT[..., None], x, 0.0).astype(np.float32)


def _bucket(value, rng):
  noisy = value + 0.5 * rng.normal(size=value.shape)
  return np.clip(np.round(noisy * 2 + N_BUCKETS // 2), 0, N_BUCKETS - 1).astype(int)


def _transcripts(rng, world, sentiment, nuisance, length, t):
  """Token ids [N, t] ([CLS] words [SEP] [PAD]...) and the space-joined raw text."""
  ids = np.zeros((len(length), t), np.int32)
  texts = []
  for i, n in enumerate(length):
    kind = rng.choice(3, size=n - 2, p=[0.5, 0.25, 0.25])
    s_b = _bucket(np.full(n - 2, sentiment[i] / np.sqrt(2)), rng)
    n_b = _bucket(np.full(n - 2, nuisance[i]), rng)
    words = [rng.choice(world.sentiment_buckets[b]) if k == 0 else
             rng.choice(world.nuisance_buckets[c]) if k == 1 else rng.choice(world.filler)
             for k, b, c in zip(kind, s_b, n_b)]
    ids[i, :n] = [CLS, *words, SEP]
    texts.append(" ".join(f"w{w}" for w in words))
  return ids, np.array(texts, dtype=object)


def _quantise_label(raw):
  return np.clip(np.round(raw * 5) / 5, -3.0, 3.0).astype(np.float32)


def generate_split(spec: SyntheticSpec, world: _World, n: int, stream: int, prefix: str):
  """One split as an MMSA dict (no label keys for the pool) plus its factors."""
  rng = np.random.default_rng([spec.seed, stream])
  shared = rng.normal(size=n)
  private = rng.normal(size=(n, 3))  # text, audio, vision
  nuisance = rng.normal(size=(n, 3, 2))
  clean = shared + 0.8 * private.sum(1)
  label = _quantise_label(clean + 0.3 * rng.normal(size=n))
  t_len = _lengths(rng, n, spec.text_len, 3)
  a_len, v_len = _lengths(rng, n, spec.audio_len, 1), _lengths(rng, n, spec.vision_len, 1)
  ids, raw_text = _transcripts(rng, world, shared + private[:, 0], nuisance[:, 0, 0], t_len,
                               spec.text_len)
  audio = _frames(rng, world, "audio", shared, private[:, 1], nuisance[:, 1], a_len,
                  spec.audio_len, spec)
  vision = _frames(rng, world, "vision", shared, private[:, 2], nuisance[:, 2], v_len,
                   spec.vision_len, spec)
  if spec.neg_inf_frac > 0:
    valid = np.arange(spec.audio_len)[None, :, None] < a_len[:, None, None]
    hit = valid & (rng.random(audio.shape) < spec.neg_inf_frac)
    audio[hit] = -np.inf
  mask = (np.arange(spec.text_len)[None, :] < t_len[:, None]).astype(np.float32)
  video = np.arange(n) // 10  # Ten clips per video; videos never cross splits.
  split = {
      "raw_text": raw_text,
      "text_bert": np.stack([ids.astype(np.float32), mask, np.zeros_like(mask)], 1),
      "text": world.text_features[ids] * mask[..., None],
      "audio": audio, "vision": vision,
      "audio_lengths": a_len.tolist(), "vision_lengths": v_len.tolist(),
      "id": np.array([f"{prefix}{v:04d}$_${i % 10}" for i, v in enumerate(video)]),
  }
  factors = {"shared": shared, "private": private, "nuisance": nuisance,
             "label_clean": clean}
  return split, label, factors


def _with_labels(split, label):
  sign = np.sign(label).astype(int)
  return {**split, "regression_labels": label,
          "annotations": np.array(["Negative", "Neutral", "Positive"])[sign + 1],
          "classification_labels": (sign + 1).astype(np.float32)}


def generate(spec: SyntheticSpec):
  """Returns (labelled {split: MMSA dict}, unlabelled flat MMSA-keyed dict, factors)."""
  world = _World(spec)
  labelled, factors = {}, {}
  sizes = (spec.n_train, spec.n_valid, spec.n_test)
  for k, (name, n) in enumerate(zip(SPLITS, sizes)):
    split, label, f = generate_split(spec, world, n, k + 1, f"syn{name[:2]}")
    labelled[name], factors[name] = _with_labels(split, label), f
  pool, _, factors["unlabeled"] = generate_split(spec, world, spec.n_unlabeled, 9, "synun")
  return labelled, pool, factors


def _to_mird(split, with_labels):
  out = {"raw_text": list(split["raw_text"]), "audio": split["audio"], "video": split["vision"]}
  if with_labels:
    out["labels"] = np.asarray(split["regression_labels"], np.float32)
  return out


def word_rows(frames_TxD, length: int, n_words: int) -> np.ndarray:
  """[n_words, D]: word j's row is the mean of the j-th of n_words equal shares of the
  valid frames (at least one frame each), how word-aligned features are computed."""
  edges = np.linspace(0, length, n_words + 1)
  starts = np.minimum(np.floor(edges[:-1]).astype(int), length - 1)
  ends = np.maximum(np.floor(edges[1:]).astype(int), starts + 1)
  return np.stack([frames_TxD[s:e].mean(0) for s, e in zip(starts, ends)])


def _to_mag(split):
  """An MMSA split -> MAG-BERT examples ((words, visual, acoustic), label, segment)."""
  examples = []
  for i, raw in enumerate(split["raw_text"]):
    words = raw.split()
    rows = {m: word_rows(split[m][i], split[f"{m}_lengths"][i], len(words))
            for m in ("audio", "vision")}
    label = np.array([[split["regression_labels"][i]]], np.float32)  # MAG stores (1, 1).
    examples.append(((words, rows["vision"], rows["audio"]), label, str(split["id"][i])))
  return examples


MANIFEST = "synthetic_files.json"
_PENDING = "being written"  # A file the generator had started to write when it stopped.
# Marks folders generated before the manifest existed (tfds_builders writes it there).
_LEGACY_MARKER = "synthetic_spec.json"


def _claim(out: pathlib.Path, names: list[str]) -> dict[str, str]:
  """The manifest with `names` marked as being written, once none of them is a file the
  generator did not write; raises DataError naming the first such file."""
  path = out / MANIFEST
  manifest = json.loads(path.read_text()) if path.is_file() else {}
  legacy = not manifest and (out / _LEGACY_MARKER).is_file()
  for name in names:
    target = out / name
    if target.exists() and not legacy and manifest.get(name) not in (_PENDING,
                                                                       checks.sha256(target)):
      raise checks.DataError(
          f"{target}: exists and was not written by the synthetic generator (or was changed "
          "since); it writes only files it owns: name an empty folder (data.manual_dir, or "
          "--out), or move the file away")
  manifest.update({name: _PENDING for name in names})
  _write_manifest(out, manifest)
  return manifest


def _write_manifest(out: pathlib.Path, manifest: dict) -> None:
  _replace(out / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def _replace(path: pathlib.Path, data: bytes) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(data)
  tmp.replace(path)


def write(spec: SyntheticSpec, out: str | pathlib.Path, fmt: str = "mmsa") -> dict[str, str]:
  """Writes the files listed in the module docstring; returns {role: path}."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  names = {"mmsa": "unaligned_50.pkl", "mird": "mird.pkl", "mag": "mosi.pkl"}
  if fmt not in names:
    raise ValueError(f"unknown synthetic format {fmt!r}; expected mmsa, mird or mag")
  files = {"labelled": out / names[fmt], "unlabeled": out / "unlabeled.pkl",
           "factors": out / "factors.npz", "vocab": out / "vocab.txt"}
  manifest = _claim(out, [p.name for p in files.values()])
  mmsa, pool, factors = generate(spec)
  labelled = mmsa
  if fmt == "mird":
    labelled = {k: _to_mird(v, True) for k, v in mmsa.items()}
    pool = _to_mird(pool, False)
  elif fmt == "mag":
    labelled = {"train": _to_mag(mmsa["train"]), "dev": _to_mag(mmsa["valid"]),
                "test": _to_mag(mmsa["test"])}
  for role, obj in (("labelled", labelled), ("unlabeled", pool)):
    _replace(files[role], pickle.dumps(obj, protocol=4))
  _write_factors(files["factors"], mmsa if fmt == "mag" else labelled, pool, factors)
  _replace(files["vocab"], ("\n".join(vocab_tokens(spec.vocab_size)) + "\n").encode())
  manifest.update({p.name: checks.sha256(p) for p in files.values()})
  _write_manifest(out, manifest)
  return {k: str(v) for k, v in files.items()}


def _write_factors(path, labelled, pool, factors):
  ids = {name: np.asarray(labelled[name].get("id", [])) for name in SPLITS}
  ids["unlabeled"] = np.asarray(pool.get("id", []))
  names = list(SPLITS) + ["unlabeled"]
  cat = lambda key: np.concatenate([factors[n][key] for n in names])
  n_per = [len(factors[n]["shared"]) for n in names]
  # The MIRD layout has no ids: its readers number examples with example.positional_id.
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez(tmp, id=np.concatenate([ids[n] if len(ids[n]) else
                                    np.array([example.positional_id(n, i) for i in range(k)])
                                    for n, k in zip(names, n_per)]).astype(str),
           split=np.repeat(names, n_per), shared=cat("shared"), private=cat("private"),
           nuisance=cat("nuisance"), label_clean=cat("label_clean"))
  tmp.replace(path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--format", default="mmsa", choices=("mmsa", "mird", "mag"))
  for field in dataclasses.fields(SyntheticSpec):
    parser.add_argument(f"--{field.name}", type=field.type, default=field.default)
  args = vars(parser.parse_args(argv))
  out, fmt = args.pop("out"), args.pop("format")
  try:
    written = write(SyntheticSpec(**args), out, fmt)
  except checks.DataError as e:
    sys.exit(f"synthetic: {e}")
  for role, path in written.items():
    print(f"{role}: {path}")


if __name__ == "__main__":
  main()
