"""grain input pipeline over TFDS data sources: train, unlabelled and eval streams.

Every stream is a pure function of (seed, epoch or step), so the order never depends on
hidden state: a restored run reads exactly the batches an uninterrupted one would.
- Train: a fresh seeded global shuffle per epoch, truncated to whole global batches, each
  host reading only its block of rows of each global batch, batched to static shapes.
  Mid-epoch position = grain's iterator state, saved in the checkpoint with (epoch).
- Unlabelled: for step s, batch_u examples drawn at random from the pool with a key
  derived from (seed, s), each host reading its share.
- Eval: the split padded to whole global batches; padded rows carry mask 0, so every
  example counts exactly once.
The examples in a global batch, row by row, do not depend on the number of hosts.
Everything here yields host numpy arrays; the trainer places them on its device mesh.
"""

import grain
import numpy as np

from data_pipelines import checks
from data_pipelines import example

_UNLABELED_STREAM = 1  # Seed-stream tags, so train and unlabelled draws never coincide.
_TRAIN_STREAM = 2
_SUBSET_STREAM = 3


def _derive(*ints: int) -> int:
  return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(1)[0])


_DTYPES = {"text_ids": np.int32, "text_mask": np.int32, "text_type": np.int32,
           "audio": np.float32, "audio_len": np.int32, "vision": np.float32,
           "vision_len": np.int32, "label": np.float32}
assert tuple(_DTYPES) == example.NUMERIC_KEYS


def decode(ex) -> dict[str, np.ndarray]:
  """A data-source record -> canonical numpy fields (TFDS hands scalars back as Python)."""
  out = {k: np.asarray(ex[k], dtype) for k, dtype in _DTYPES.items()}
  out["id"] = ex["id"].decode() if isinstance(ex["id"], bytes) else str(ex["id"])
  return out


def read_rows(source, indices) -> dict[str, np.ndarray]:
  """The decoded examples at `indices`, stacked field by field ([N, ...])."""
  rows = [decode(source[int(i)]) for i in indices]
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def read_options(data_config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=max(1, data_config.prefetch),
                           prefetch_buffer_size=max(1, data_config.prefetch))


class _Host:
  """Which rows of every global batch this host reads: the contiguous block
  [index * per_host, (index + 1) * per_host), which is where
  jax.make_array_from_process_local_data puts them. So every row of the global batch (and
  its dropout mask) is the same example whatever the number of hosts."""

  def __init__(self, global_batch: int, process_index: int, process_count: int):
    if global_batch % process_count:
      raise ValueError(f"batch {global_batch} does not split over {process_count} hosts")
    self.index, self.count = process_index, process_count
    self.global_batch, self.per_host = global_batch, global_batch // process_count

  def position(self, m: int) -> int:
    """Global position of this host's m-th row (rows of consecutive batches follow)."""
    step, row = divmod(int(m), self.per_host)
    return step * self.global_batch + self.index * self.per_host + row

  def share(self, rows: np.ndarray) -> np.ndarray:
    """This host's block of one global batch's rows."""
    return rows[self.index * self.per_host:(self.index + 1) * self.per_host]


class TrainStream:
  """Labelled training batches; `iterator(epoch, state)` resumes mid-epoch."""

  def __init__(self, source, global_batch: int, seed: int, read_options: grain.ReadOptions,
               process_index: int = 0, process_count: int = 1):
    self.source, self.global_batch, self.seed = source, global_batch, seed
    self.host = _Host(global_batch, process_index, process_count)
    self.steps_per_epoch = len(source) // global_batch
    if self.steps_per_epoch < 1:
      raise checks.DataError(f"the train split has {len(source)} examples, fewer than one "
                             f"global batch (data.batch_size={global_batch}): lower "
                             "data.batch_size, raise data.label_fraction or use more training data")
    self.read_options = read_options

  def dataset(self, epoch: int) -> grain.MapDataset:
    shuffled = grain.MapDataset.source(self.source).shuffle(
        seed=_derive(self.seed, _TRAIN_STREAM, epoch))
    ds = grain.MapDataset.range(self.steps_per_epoch * self.host.per_host).map(
        lambda m: decode(shuffled[self.host.position(m)]))
    return ds.batch(self.host.per_host, drop_remainder=True)

  def iterator(self, epoch: int, state: dict | None = None):
    it = iter(self.dataset(epoch).to_iter_dataset(self.read_options))
    if state is not None:
      it.set_state(state)
    return it


class UnlabeledStream:
  """Random unlabelled batches, a pure function of the step."""

  def __init__(self, source, global_batch: int, seed: int, read_options: grain.ReadOptions,
               process_index: int = 0, process_count: int = 1):
    self.source, self.global_batch, self.seed = source, global_batch, seed
    self.host = _Host(global_batch, process_index, process_count)
    self.read_options = read_options

  def indices(self, step: int) -> np.ndarray:
    """This host's pool indices at `step` (without replacement when the pool is big enough)."""
    rng = np.random.default_rng(_derive(self.seed, _UNLABELED_STREAM, step))
    n = len(self.source)
    drawn = rng.choice(n, size=self.global_batch, replace=self.global_batch > n)
    return self.host.share(drawn)

  def _batch(self, step: int) -> dict[str, np.ndarray]:
    batch = read_rows(self.source, self.indices(step))
    del batch["label"]  # Unlabelled: nothing may read a label here.
    return batch

  def iterator(self, start_step: int):
    ds = grain.MapDataset.range(start_step, 2**62).map(self._batch)
    return iter(ds.to_iter_dataset(self.read_options))


def eval_batches(source, global_batch: int, read_options: grain.ReadOptions,
                 process_index: int = 0, process_count: int = 1):
  """This host's padded eval batches, each with `mask` (1 real, 0 padding) and `position`."""
  host = _Host(global_batch, process_index, process_count)
  n = len(source)
  padded = -(-n // global_batch) * global_batch

  def read(i):
    ex = decode(source[int(i) % n])
    ex["mask"] = np.float32(i < n)
    ex["position"] = np.int32(i)  # Dataset order, to reassemble rows gathered from hosts.
    if i >= n:
      ex["id"] = ""
    return ex
  ds = grain.MapDataset.range(padded // host.count).map(lambda m: read(host.position(m)))
  return iter(ds.batch(host.per_host).to_iter_dataset(read_options))


class SubsetSource:
  """The examples `indices` of a source, as a source of their own."""

  def __init__(self, source, indices):
    self._source, self._indices = source, np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, i: int):
    return self._source[int(self._indices[int(i)])]


class ConcatSource:
  """Several sources one after another, as one source."""

  def __init__(self, parts):
    self._parts = list(parts)
    self._starts = np.cumsum([0] + [len(p) for p in self._parts])

  def __len__(self) -> int:
    return int(self._starts[-1])

  def __getitem__(self, i: int):
    part = int(np.searchsorted(self._starts, int(i), side="right")) - 1
    return self._parts[part][int(i) - int(self._starts[part])]


def label_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(kept, withheld): sorted indices of the `fraction` of n train examples that keep their
  labels (at least one) and of the rest, drawn with `seed` alone, so that every training
  seed of a protocol sees the same labelled subset (and its runs pair)."""
  order = np.random.default_rng(_derive(seed, _SUBSET_STREAM)).permutation(n)
  k = min(n, max(1, int(round(fraction * n))))
  return np.sort(order[:k]), np.sort(order[k:])


def with_label_fraction(data_config, sources: dict) -> dict:
  """`sources` with the train split cut to `data.label_fraction` of its examples (the
  fewer-labels protocol) and, with `data.unlabel_rest`, the withheld examples added to the
  unlabelled pool, which never reads a label; unchanged at fraction 1."""
  d = data_config
  if d.label_fraction >= 1.0 or "train" not in sources:
    return sources
  kept, withheld = label_split(len(sources["train"]), d.label_fraction, d.label_subset_seed)
  out = dict(sources, train=SubsetSource(sources["train"], kept))
  if d.unlabel_rest and len(withheld):
    rest = SubsetSource(sources["train"], withheld)
    out["unlabeled"] = ConcatSource([sources["unlabeled"], rest]) if "unlabeled" in sources \
        else rest
  return out


class Streams:
  """Everything the trainer reads, built from the config, for one host of `process_count`;
  with `training` False only the eval batches (no train or unlabelled stream). `sources`
  holds the splits the run trains on: the labelled subset and the extended pool under
  `data.label_fraction` (with_label_fraction)."""

  def __init__(self, config, sources: dict, *, process_index: int, process_count: int,
               training: bool = True):
    d = config.data
    sources = with_label_fraction(d, sources)
    self.sources = sources
    self.options = read_options(d)
    host = dict(process_index=process_index, process_count=process_count)
    training = training and "train" in sources
    self.train = (TrainStream(sources["train"], d.batch_size, config.seed, self.options, **host)
                  if training else None)
    self.unlabeled = None
    n_unlabeled = unlabeled_batch_size(d)
    if n_unlabeled > 0 and training:
      if len(sources.get("unlabeled", ())) == 0:
        raise checks.DataError(
            f"data.unlabeled_ratio={d.unlabeled_ratio} asks for unlabelled examples, but the "
            f"dataset has no unlabeled split (data.unlabeled_file={d.unlabeled_file!r})")
      self.unlabeled = UnlabeledStream(sources["unlabeled"], n_unlabeled, config.seed,
                                       self.options, **host)
    self._host = host
    self._eval_batch = d.eval_batch_size
    # Splits that must not be read (a sweep trial's test split): eval() refuses them.
    self.sealed: tuple[str, ...] = ()

  def eval(self, split: str):
    """Padded eval batches of `split` for this host (with `mask` and `id`)."""
    if split in self.sealed:
      raise RuntimeError(f"the {split} split is sealed for this run (a sweep trial selects "
                         "on validation and never reads it)")
    return eval_batches(self.sources[split], self._eval_batch, self.options, **self._host)


def unlabeled_batch_size(data_config) -> int:
  """Unlabelled examples per global step: ratio x labelled batch, rounded."""
  return int(round(data_config.unlabeled_ratio * data_config.batch_size))


class ArraySource:
  """Canonical split arrays (a reader's output) as a random-access source, for predict."""

  def __init__(self, split: dict[str, np.ndarray]):
    self._split = split

  def __len__(self) -> int:
    return len(self._split["id"])

  def __getitem__(self, i: int) -> dict:
    return {k: self._split[k][i] for k in example.KEYS}
