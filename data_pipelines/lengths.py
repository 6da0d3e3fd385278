"""Paying only for real tokens and frames: each example's lengths, the length buckets a batch
is trimmed to, and length-grouped batch orders (docs/design.md, "Length buckets").

A batch is cut, for text, audio and vision separately, to the smallest bucket that holds its
longest real sequence; the padded length of the data is always the last bucket. Every
consumer masks padding (the losses count real tokens and frames only, attention and the
LSTMs stop at each length), so a trimmed batch gives the same numbers as the padded one up
to float rounding, and the step compiles one program per bucket combination it meets.
The bucket of a global batch is a function of the examples in it (read from a table of
every example's lengths), never of the rows one host holds, so all hosts cut alike.
"""

import dataclasses

import numpy as np

MODALITIES = ("text", "audio", "vision")
# The fields cut along time for each modality (their axis 1).
_TIME_FIELDS = {"text": ("text_ids", "text_mask", "text_type"), "audio": ("audio",),
                "vision": ("vision",)}


def example_lengths(ex) -> tuple[int, int, int]:
  """(text, audio, vision) lengths of one record: the text up to its last real token (at
  least 1), the frames from audio_len and vision_len."""
  real = np.flatnonzero(np.asarray(ex["text_mask"]))
  return (int(real[-1]) + 1 if len(real) else 1, int(np.asarray(ex["audio_len"])),
          int(np.asarray(ex["vision_len"])))


def table(source) -> np.ndarray:
  """[N, 3] int32: example_lengths of every example of a random-access source."""
  out = np.ones((len(source), 3), np.int32)
  for i in range(len(source)):
    out[i] = example_lengths(source[i])
  return out


def shape(batch: dict) -> tuple[int, int, int]:
  """The (text, audio, vision) lengths a batch holds (its time axes)."""
  return tuple(batch[_TIME_FIELDS[m][0]].shape[1] for m in MODALITIES)


def common_shape(*batches) -> tuple[int, int, int]:
  """Per modality, the longest of the batches' lengths (None entries skipped): the shape
  that holds them all. The longest of several buckets is a bucket."""
  return tuple(int(v) for v in np.max([shape(b) for b in batches if b is not None], axis=0))


def by_bucket(bucket_index_Nx3: np.ndarray) -> np.ndarray:
  """The indices that sort examples by bucket: text first, then audio, then vision; stable,
  so examples of equal buckets keep their order."""
  idx = np.asarray(bucket_index_Nx3)
  return np.lexsort((idx[:, 2], idx[:, 1], idx[:, 0]))


def padded_lengths(source) -> tuple[int, int, int]:
  """(text, audio, vision) padded lengths of a source (its first record's shapes)."""
  ex = source[0]
  return tuple(int(np.shape(ex[k])[0]) for k in ("text_ids", "audio", "vision"))


@dataclasses.dataclass(frozen=True)
class Buckets:
  """The lengths each modality may be cut to, ascending, the padded length last."""
  text: tuple[int, ...]
  audio: tuple[int, ...]
  vision: tuple[int, ...]

  @classmethod
  def make(cls, configured, padded) -> "Buckets":
    """`configured`: three sequences of bucket lengths (data.text_buckets, ...); those at or
    beyond the padded length are dropped, and the padded length is added."""
    return cls(*(tuple(sorted({int(b) for b in want if 0 < int(b) < pad})) + (int(pad),)
                 for want, pad in zip(configured, padded)))

  @property
  def trims(self) -> bool:
    """Whether any modality has a bucket shorter than its padded length."""
    return any(len(b) > 1 for b in self.all)

  @property
  def all(self) -> tuple[tuple[int, ...], ...]:
    return self.text, self.audio, self.vision

  def index(self, lengths_Nx3: np.ndarray) -> np.ndarray:
    """[N, 3]: each example's bucket (its place in the modality's list)."""
    lengths_Nx3 = np.asarray(lengths_Nx3).reshape(-1, 3)
    return np.stack([np.searchsorted(np.asarray(b), lengths_Nx3[:, m], side="left")
                     for m, b in enumerate(self.all)], axis=1)

  def fit(self, lengths_Nx3: np.ndarray) -> tuple[int, int, int]:
    """The (text, audio, vision) lengths a batch of these examples is cut to."""
    top = np.asarray(lengths_Nx3).reshape(-1, 3).max(axis=0)
    if np.any(top > [b[-1] for b in self.all]):
      raise ValueError(f"lengths {top.tolist()} exceed the padded lengths "
                       f"{[b[-1] for b in self.all]}")
    return tuple(int(b[i]) for b, i in zip(self.all, self.index(top)[0]))


def trim(batch: dict, shape: tuple[int, int, int]) -> dict:
  """`batch` with each modality's time axis cut to `shape` (text, audio, vision)."""
  out = dict(batch)
  for m, length in zip(MODALITIES, shape):
    for key in _TIME_FIELDS[m]:
      if out[key].shape[1] != length:
        out[key] = np.ascontiguousarray(out[key][:, :length])
  return out


def pad(batch: dict, shape: tuple[int, int, int]) -> dict:
  """`batch` with each modality's time axis zero-padded up to `shape` (padding is what the
  untrimmed data holds there: zero ids, mask and frames)."""
  out = dict(batch)
  for m, length in zip(MODALITIES, shape):
    for key in _TIME_FIELDS[m]:
      extra = length - out[key].shape[1]
      if extra < 0:
        raise ValueError(f"{key} has {out[key].shape[1]} steps, more than {length}")
      if extra:
        widths = [(0, 0)] * out[key].ndim
        widths[1] = (0, extra)
        out[key] = np.pad(out[key], widths)
  return out


def grouped_order(order: np.ndarray, bucket_index_Nx3: np.ndarray, global_batch: int,
                  chunk_batches: int, seed: int) -> np.ndarray:
  """An epoch's read order rearranged into batches of similar lengths.

  `order` (a shuffled epoch, whole global batches) is cut into chunks of `chunk_batches`
  batches (0: one chunk); each chunk is sorted by the examples' buckets (text first, then
  audio, then vision; stable, so equal buckets keep their shuffled order) and cut into
  batches; then the epoch's batches are shuffled with `seed`. Every example of `order`
  appears once, and the result is a function of its arguments only.
  """
  order = np.asarray(order)
  steps = len(order) // global_batch
  order = order[:steps * global_batch]
  chunk = (chunk_batches or steps) * global_batch
  parts = []
  for start in range(0, len(order), chunk):
    part = order[start:start + chunk]
    parts.append(part[by_bucket(bucket_index_Nx3[part])])
  batches = np.concatenate(parts).reshape(steps, global_batch)
  return batches[np.random.default_rng(seed).permutation(steps)].reshape(-1)


def cost(shapes_Sx3: np.ndarray, padded) -> np.ndarray:
  """Per modality, the positions the batches of `shapes` compute as a share of the padded
  batches' (1 = no saving)."""
  return np.asarray(shapes_Sx3, np.float64).mean(axis=0) / np.asarray(padded, np.float64)
