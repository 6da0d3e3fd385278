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
With length buckets (data.*_buckets, lengths.py) every batch is cut to the bucket of its
global batch's longest sequences; with data.group_by_length the train order is grouped by
length (lengths.grouped_order), still a function of (seed, epoch).
Everything here yields host numpy arrays; the trainer places them on its device mesh.
"""

import functools

from absl import logging
import grain
import numpy as np

from data_pipelines import checks
from data_pipelines import example
from data_pipelines import lengths

_UNLABELED_STREAM = 1  # Seed-stream tags, so train and unlabelled draws never coincide.
_TRAIN_STREAM = 2
_SUBSET_STREAM = 3
_GROUP_STREAM = 4


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

  def share(self, rows: np.ndarray) -> np.ndarray:
    """This host's block of one global batch's rows."""
    return rows[self.index * self.per_host:(self.index + 1) * self.per_host]


class Cutter:
  """Cuts the batches of one source to their buckets (lengths.py): the source's length
  table and each example's bucket, read once, and the buckets. `shape(positions)` is the
  bucket of the global batch at those example positions, the same on every host."""

  def __init__(self, source, buckets: lengths.Buckets):
    self.buckets = buckets
    self.table = lengths.table(source)
    self.index = buckets.index(self.table)

  def shape(self, positions) -> tuple[int, int, int]:
    return self.buckets.fit(self.table[np.asarray(positions)])

  def cut(self, batch: dict, positions) -> dict:
    return lengths.trim(batch, self.shape(positions))

  def by_length(self) -> np.ndarray:
    """The source's indices sorted by bucket (lengths.by_bucket)."""
    return lengths.by_bucket(self.index)


class TrainStream:
  """Labelled training batches; `iterator(epoch, state)` resumes mid-epoch.

  An epoch reads the global batches of `order(epoch)` in turn, each host its block of
  rows, each batch cut to its bucket when a `cutter` is given. `group_chunk` (None: no
  grouping) groups the order by length (lengths.grouped_order).
  """

  def __init__(self, source, global_batch: int, seed: int, read_options: grain.ReadOptions,
               process_index: int = 0, process_count: int = 1, cutter: Cutter | None = None,
               group_chunk: int | None = None):
    self.source, self.global_batch, self.seed = source, global_batch, seed
    self.host = _Host(global_batch, process_index, process_count)
    self.steps_per_epoch = len(source) // global_batch
    if self.steps_per_epoch < 1:
      raise checks.DataError(f"the train split has {len(source)} examples, fewer than one "
                             f"global batch (data.batch_size={global_batch}): lower "
                             "data.batch_size, raise data.label_fraction or use more training data")
    self.read_options = read_options
    self.cutter, self.group_chunk = cutter, group_chunk
    if group_chunk is not None and cutter is None:
      raise ValueError("grouping by length needs the length buckets (a cutter)")

  def order(self, epoch: int) -> np.ndarray:
    """The example indices of the epoch's global batches, in reading order (whole batches):
    grain's seeded shuffle of the split, grouped by length if asked."""
    n, kept = len(self.source), self.steps_per_epoch * self.global_batch
    shuffled = grain.MapDataset.range(n).shuffle(seed=_derive(self.seed, _TRAIN_STREAM, epoch))
    order = np.fromiter((shuffled[i] for i in range(kept)), np.int64, kept)
    if self.group_chunk is None:
      return order
    return lengths.grouped_order(order, self.cutter.index, self.global_batch, self.group_chunk,
                                 _derive(self.seed, _GROUP_STREAM, epoch))

  def shapes(self, epoch: int) -> list[tuple[int, int, int]]:
    """The (text, audio, vision) lengths of each of the epoch's batches."""
    order = self.order(epoch).reshape(self.steps_per_epoch, self.global_batch)
    if self.cutter is None:
      return [lengths.padded_lengths(self.source)] * self.steps_per_epoch
    return [self.cutter.shape(rows) for rows in order]

  def _read(self, order: np.ndarray, b: int) -> dict[str, np.ndarray]:
    g = order[b * self.global_batch:(b + 1) * self.global_batch]
    batch = read_rows(self.source, self.host.share(g))
    return self.cutter.cut(batch, g) if self.cutter else batch

  def dataset(self, epoch: int) -> grain.MapDataset:
    return grain.MapDataset.range(self.steps_per_epoch).map(
        functools.partial(self._read, self.order(epoch)))

  def iterator(self, epoch: int, state: dict | None = None):
    it = iter(self.dataset(epoch).to_iter_dataset(self.read_options))
    if state is not None:
      it.set_state(state)
    return it


class UnlabeledStream:
  """Random unlabelled batches, a pure function of the step."""

  def __init__(self, source, global_batch: int, seed: int, read_options: grain.ReadOptions,
               process_index: int = 0, process_count: int = 1, cutter: Cutter | None = None):
    self.source, self.global_batch, self.seed = source, global_batch, seed
    self.host = _Host(global_batch, process_index, process_count)
    self.read_options = read_options
    self.cutter = cutter

  def drawn(self, step: int) -> np.ndarray:
    """The global batch's pool indices at `step` (without replacement when the pool is big
    enough)."""
    rng = np.random.default_rng(_derive(self.seed, _UNLABELED_STREAM, step))
    n = len(self.source)
    return rng.choice(n, size=self.global_batch, replace=self.global_batch > n)

  def _batch(self, step: int) -> dict[str, np.ndarray]:
    drawn = self.drawn(step)
    batch = read_rows(self.source, self.host.share(drawn))
    del batch["label"]  # Unlabelled: nothing may read a label here.
    return self.cutter.cut(batch, drawn) if self.cutter else batch

  def iterator(self, start_step: int):
    ds = grain.MapDataset.range(start_step, 2**62).map(self._batch)
    return iter(ds.to_iter_dataset(self.read_options))


def eval_batches(source, global_batch: int, read_options: grain.ReadOptions,
                 process_index: int = 0, process_count: int = 1, cutter: Cutter | None = None):
  """This host's padded eval batches, each with `mask` (1 real, 0 padding) and `position`
  (an example's place in the dataset, to reassemble rows gathered from hosts in dataset
  order). With a `cutter` the examples are read in order of their buckets, shortest first,
  and each batch is cut to its bucket; the padding rows repeat real examples (mask 0)."""
  host = _Host(global_batch, process_index, process_count)
  n = len(source)
  order = np.arange(n) if cutter is None else cutter.by_length()

  def read(b):
    slots = np.arange(b * global_batch, (b + 1) * global_batch)
    mine = host.share(slots)
    examples = order[mine % n]
    batch = read_rows(source, examples)
    batch["mask"] = (mine < n).astype(np.float32)
    batch["position"] = np.where(mine < n, examples, mine).astype(np.int32)
    batch["id"] = np.where(mine < n, batch["id"], "")
    return cutter.cut(batch, order[slots % n]) if cutter else batch
  return iter(grain.MapDataset.range(-(-n // global_batch)).map(read).to_iter_dataset(
      read_options))


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
    self._configured = (d.text_buckets, d.audio_buckets, d.vision_buckets)
    self._cutters = {}
    training = training and "train" in sources
    cutter = self.cutter("train") if training else None
    group = d.group_by_length and cutter is not None
    if d.group_by_length and training and cutter is None:
      logging.warning(
          "data.group_by_length=True, but no bucket of data.text_buckets, data.audio_buckets "
          "or data.vision_buckets is shorter than the data's padded lengths %s: the batches "
          "are neither cut nor grouped", lengths.padded_lengths(sources["train"]))
    self.train = (TrainStream(sources["train"], d.batch_size, config.seed, self.options,
                              cutter=cutter, group_chunk=d.group_chunk if group else None,
                              **host)
                  if training else None)
    self.unlabeled = None
    n_unlabeled = unlabeled_batch_size(d)
    if n_unlabeled > 0 and training:
      if len(sources.get("unlabeled", ())) == 0:
        raise checks.DataError(
            f"data.unlabeled_ratio={d.unlabeled_ratio} asks for unlabelled examples, but the "
            f"dataset has no unlabeled split (data.unlabeled_file={d.unlabeled_file!r})")
      self.unlabeled = UnlabeledStream(sources["unlabeled"], n_unlabeled, config.seed,
                                       self.options, cutter=self.cutter("unlabeled"), **host)
    self._host = host
    self._eval_batch = d.eval_batch_size
    # Splits that must not be read (a sweep trial's test split): eval() refuses them.
    self.sealed: tuple[str, ...] = ()

  def eval(self, split: str):
    """Padded eval batches of `split` for this host (with `mask` and `id`)."""
    if split in self.sealed:
      raise RuntimeError(f"the {split} split is sealed for this run (a sweep trial selects "
                         "on validation and never reads it)")
    return eval_batches(self.sources[split], self._eval_batch, self.options,
                        cutter=self.cutter(split), **self._host)

  def cutter(self, split: str) -> Cutter | None:
    """The bucket cutter of `split` (its length table read on first use), or None when no
    configured bucket is shorter than the padded lengths."""
    if split not in self._cutters:
      source, cutter = self.sources[split], None
      if len(source):
        buckets = lengths.Buckets.make(self._configured, lengths.padded_lengths(source))
        cutter = Cutter(source, buckets) if buckets.trims else None
      self._cutters[split] = cutter
    return self._cutters[split]


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
