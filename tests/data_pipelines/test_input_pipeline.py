"""Input pipeline: exact coverage, host sharding, determinism, resume from an Orbax checkpoint."""

import collections

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from data_pipelines import checks
from data_pipelines import input_pipeline
from data_pipelines import lengths
from mird_jax import config_check
from mird_jax.runs import experiment
from mird_jax.training import sharding
from smoke import smoke_config

OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)


@pytest.fixture(name="sources", scope="module")
def _sources(smoke_exp):
  """The session's synthetic data (built once): 21 valid examples, a multiple of no batch
  size used below."""
  assert len(smoke_exp.streams.sources["valid"]) == 21
  return smoke_exp.streams.sources


def _ids(batches):
  return [list(b["id"]) for b in batches]


@pytest.mark.parametrize("hosts", [1, 2, 4])
def test_eval_counts_every_example_once(sources, hosts):
  source = sources["valid"]
  seen = collections.Counter()
  for h in range(hosts):
    for batch in input_pipeline.eval_batches(source, 8, OPTIONS, h, hosts):
      assert batch["audio"].shape[0] == 8 // hosts  # Static shapes, padded.
      for i, m in zip(batch["id"], batch["mask"]):
        if m:
          seen[i] += 1
        else:
          assert i == ""
  assert len(seen) == len(source) == 21 and set(seen.values()) == {1}


def test_train_epoch_shuffles_per_epoch_and_covers_whole_batches(sources):
  stream = input_pipeline.TrainStream(sources["train"], 16, seed=5, read_options=OPTIONS)
  e0, e1 = list(stream.iterator(0)), list(stream.iterator(1))
  assert len(e0) == stream.steps_per_epoch == len(sources["train"]) // 16
  flat0 = sum(_ids(e0), [])
  assert len(set(flat0)) == len(flat0)  # No repeats within an epoch.
  assert flat0 != sum(_ids(e1), [])  # A different order each epoch ...
  assert _ids(e0) == _ids(stream.iterator(0))  # ... and the same order for the same epoch.
  other_seed = input_pipeline.TrainStream(sources["train"], 16, seed=6, read_options=OPTIONS)
  assert _ids(other_seed.iterator(0)) != _ids(e0)
  assert e0[0]["label"].dtype == np.float32 and e0[0]["audio_len"].dtype == np.int32


def test_global_batches_do_not_depend_on_host_count(sources):
  one = list(input_pipeline.TrainStream(sources["train"], 16, 5, OPTIONS).iterator(2))
  hosts = [list(input_pipeline.TrainStream(sources["train"], 16, 5, OPTIONS, h, 4).iterator(2))
           for h in range(4)]
  for step, batch in enumerate(one):
    rows = [i for h in range(4) for i in hosts[h][step]["id"]]  # Host blocks, in host order.
    assert rows == list(batch["id"])


def test_unlabeled_stream_is_a_function_of_the_step(sources):
  stream = input_pipeline.UnlabeledStream(sources["unlabeled"], 8, 5, OPTIONS)
  it = stream.iterator(0)
  first = [next(it) for _ in range(4)]
  again = stream.iterator(2)
  assert list(next(again)["id"]) == list(first[2]["id"])
  assert list(first[0]["id"]) != list(first[1]["id"])
  assert "label" not in first[0] and len(set(first[0]["id"])) == 8
  halves = [input_pipeline.UnlabeledStream(sources["unlabeled"], 8, 5, OPTIONS, h, 2)
            for h in range(2)]
  union = [*next(halves[0].iterator(3))["id"], *next(halves[1].iterator(3))["id"]]
  assert union == list(first[3]["id"])


def test_resume_mid_epoch_from_an_orbax_checkpoint(sources, tmp_path):
  stream = input_pipeline.TrainStream(sources["train"], 8, seed=1, read_options=OPTIONS)
  it = stream.iterator(epoch=1)
  for _ in range(2):
    next(it)
  mngr = ocp.CheckpointManager(tmp_path / "ckpt")
  mngr.save(7, args=ocp.args.Composite(data=ocp.args.JsonSave(
      {"epoch": 1, "iterator": it.get_state()})))
  mngr.wait_until_finished()
  expected = [next(it) for _ in range(3)]

  restored = ocp.CheckpointManager(tmp_path / "ckpt").restore(
      7, args=ocp.args.Composite(data=ocp.args.JsonRestore()))["data"]
  resumed = input_pipeline.TrainStream(sources["train"], 8, seed=1, read_options=OPTIONS)
  it2 = resumed.iterator(restored["epoch"], restored["iterator"])
  for want in expected:
    got = next(it2)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_batches_arrive_sharded_on_the_data_axis(sources):
  mesh = sharding.make_mesh()
  host = next(input_pipeline.TrainStream(sources["train"], 16, 0, OPTIONS).iterator(0))
  batch = sharding.to_global(host, mesh)
  assert "id" not in batch
  audio = batch["audio"]
  assert isinstance(audio, jax.Array) and audio.shape == host["audio"].shape
  assert audio.sharding == sharding.batch_sharding(mesh)
  assert {s.data.shape[0] for s in audio.addressable_shards} == {2}  # 16 rows / 8 devices.
  np.testing.assert_array_equal(np.asarray(audio), host["audio"])


def test_batch_sizes_that_do_not_split_are_named():
  mesh = sharding.make_mesh()
  with pytest.raises(config_check.ConfigError,
                     match=r"data.batch_size=12 must be a positive multiple of the device "
                           r"count \(8\)"):
    sharding.check_batch_size(12, mesh, "data.batch_size")


def test_too_small_train_split(sources):
  with pytest.raises(checks.DataError,
                     match=r"fewer than one global batch \(data.batch_size=4096\)"):
    input_pipeline.TrainStream(sources["train"], 4096, 0, OPTIONS)


def test_streams_from_config(sources, tmp_path):
  config = smoke_config()
  streams = input_pipeline.Streams(config, sources, process_index=0, process_count=1)
  batch = next(streams.train.iterator(0))
  assert batch["audio"].shape == (config.data.batch_size, config.data.audio_len,
                                  config.data.audio_dim)
  u = next(streams.unlabeled.iterator(0))
  assert u["audio"].shape[0] == int(config.data.unlabeled_ratio * config.data.batch_size)
  assert sum(b["mask"].sum() for b in streams.eval("test")) == len(sources["test"])
  config.data.unlabeled_ratio = 0.0
  assert input_pipeline.Streams(config, sources, process_index=0,
                                process_count=1).unlabeled is None
  config.data.unlabeled_ratio = 1.0
  no_pool = {k: v for k, v in sources.items() if k != "unlabeled"}
  with pytest.raises(checks.DataError, match=r"data.unlabeled_ratio=1.0 asks for unlabelled "
                                             r"examples, but the dataset has no unlabeled"):
    input_pipeline.Streams(config, no_pool, process_index=0, process_count=1)
  config.data.unlabeled_ratio = 0.5  # 4 unlabelled rows cannot split over 8 devices.
  with pytest.raises(config_check.ConfigError,
                     match=r"data.unlabeled_ratio \* data.batch_size=4"):
    experiment.build(config, tmp_path, sources=sources)


def test_a_run_on_a_subset_of_the_devices():
  config = smoke_config()
  assert sharding.mesh_for(config).devices.size == 8  # 0: every device.
  config.train.num_devices = 1
  assert sharding.mesh_for(config).devices.size == 1
  config.train.num_devices = 9
  with pytest.raises(config_check.ConfigError, match="train.num_devices=9: this host has 8"):
    sharding.mesh_for(config)


def _all_ids(source):
  return [input_pipeline.decode(source[i])["id"] for i in range(len(source))]


def test_fewer_labels_keep_a_fixed_subset_and_pool_the_rest(sources):
  """data.label_fraction: one labelled subset for every training seed, the withheld train
  examples added to the unlabelled pool (data.unlabel_rest), and nothing else changed."""
  n = len(sources["train"])
  kept, withheld = input_pipeline.label_split(n, 0.25, seed=0)
  assert len(kept) == round(0.25 * n) and not set(kept) & set(withheld)
  assert sorted([*kept, *withheld]) == list(range(n))
  assert not np.array_equal(input_pipeline.label_split(n, 0.25, seed=1)[0], kept)
  config = smoke_config()
  config.data.label_fraction = 0.25
  train_ids = _all_ids(sources["train"])
  for seed in (0, 5):  # The training seed does not move the subset.
    config.seed = seed
    streams = input_pipeline.Streams(config, sources, process_index=0, process_count=1)
    assert _all_ids(streams.sources["train"]) == [train_ids[i] for i in kept]
  seen = {i for epoch in range(3) for b in streams.train.iterator(epoch) for i in b["id"]}
  assert seen <= {train_ids[i] for i in kept}  # Training reads labelled subset rows only.
  pool = _all_ids(streams.sources["unlabeled"])
  assert pool == _all_ids(sources["unlabeled"]) + [train_ids[i] for i in withheld]
  drawn = {i for s in range(40) for i in next(streams.unlabeled.iterator(s))["id"]}
  assert drawn & {train_ids[i] for i in withheld}  # The withheld examples are drawn ...
  assert "label" not in next(streams.unlabeled.iterator(0))  # ... without their labels.
  for split in ("valid", "test"):
    assert streams.sources[split] is sources[split]
  config.data.unlabel_rest = False
  streams = input_pipeline.Streams(config, sources, process_index=0, process_count=1)
  assert streams.sources["unlabeled"] is sources["unlabeled"]
  config.data.label_fraction = 1.0
  assert input_pipeline.Streams(config, sources, process_index=0,
                                process_count=1).sources["train"] is sources["train"]


# Length buckets and grouping (data_pipelines/lengths.py). The session's synthetic data
# has text 4-16 tokens of 16, audio 6-24 frames of 24, vision 5-20 frames of 20.
BUCKETS = ((8, 12), (12, 18), (10, 15))


def _bucketed(sources, batch=8, seed=5, group_chunk=None, host=0, hosts=1, split="train"):
  buckets = lengths.Buckets.make(BUCKETS, lengths.padded_lengths(sources[split]))
  cutter = input_pipeline.Cutter(sources[split], buckets)
  return input_pipeline.TrainStream(sources[split], batch, seed, OPTIONS, host, hosts,
                                    cutter=cutter, group_chunk=group_chunk)


def _longest(b):
  return (int(np.max(np.flatnonzero(b["text_mask"].any(0)))) + 1, int(b["audio_len"].max()),
          int(b["vision_len"].max()))


@pytest.mark.parametrize("group_chunk", [None, 2])
def test_each_batch_is_cut_to_the_smallest_bucket_that_holds_it(sources, group_chunk):
  """The padded stream's examples (in its order without grouping), every batch cut to the
  smallest bucket of each modality that holds its longest sequence, losing only padding:
  the padded batch is the cut one padded back."""
  cut = _bucketed(sources, group_chunk=group_chunk)
  plain = list(input_pipeline.TrainStream(sources["train"], 8, 5, OPTIONS).iterator(1))
  batches = list(cut.iterator(1))
  assert [lengths.shape(b) for b in batches] == cut.shapes(1)
  for b in batches:
    assert lengths.shape(b) == cut.cutter.buckets.fit(np.array([_longest(b)])), _longest(b)
  assert len({lengths.shape(b) for b in batches}) > 1  # Some batches are cut, some differently.
  if group_chunk is not None:
    assert sorted(sum(_ids(batches), [])) == sorted(sum(_ids(plain), []))
    return
  assert _ids(batches) == _ids(plain)
  for b, p in zip(batches, plain):
    padded = lengths.pad(b, (16, 24, 20))
    for key in p:
      np.testing.assert_array_equal(padded[key], p[key], err_msg=key)


def test_grouping_pays_for_fewer_positions_is_seeded_and_resumes_exactly(sources):
  grouped, plain = _bucketed(sources, group_chunk=0), _bucketed(sources)
  cost = lambda s, e: lengths.cost(np.array(s.shapes(e)), (16, 24, 20)).sum()
  assert np.mean([cost(grouped, e) for e in range(3)]) < np.mean([cost(plain, e)
                                                                  for e in range(3)])
  assert _ids(grouped.iterator(2)) == _ids(_bucketed(sources, group_chunk=0).iterator(2))
  assert _ids(grouped.iterator(2)) != _ids(grouped.iterator(3))
  assert _ids(grouped.iterator(2)) != _ids(_bucketed(sources, seed=6, group_chunk=0).iterator(2))
  it = grouped.iterator(2)
  for _ in range(3):
    next(it)
  state = it.get_state()
  rest = list(it)
  resumed = list(_bucketed(sources, group_chunk=0).iterator(2, state))
  assert _ids(resumed) == _ids(rest) and [lengths.shape(b) for b in resumed] == [lengths.shape(b)
                                                                         for b in rest]


def test_hosts_cut_their_rows_of_a_global_batch_alike(sources):
  one = list(_bucketed(sources, batch=16, group_chunk=2).iterator(0))
  hosts = [list(_bucketed(sources, batch=16, group_chunk=2, host=h, hosts=4).iterator(0))
           for h in range(4)]
  assert len({lengths.shape(b) for b in one}) > 1
  for step, batch in enumerate(one):
    assert [i for h in range(4) for i in hosts[h][step]["id"]] == list(batch["id"])
    assert {lengths.shape(hosts[h][step]) for h in range(4)} == {lengths.shape(batch)}


def test_eval_reads_by_length_and_still_counts_every_example_once(sources):
  """Cut eval batches read the split shortest first, each example once (mask 1), with its
  dataset position, so predictions gathered by position come back in dataset order."""
  source = sources["test"]
  cutter = input_pipeline.Cutter(source, lengths.Buckets.make(BUCKETS, (16, 24, 20)))
  ids = [input_pipeline.decode(source[i])["id"] for i in range(len(source))]
  for hosts in (1, 2):
    batches = [[b for b in input_pipeline.eval_batches(source, 16, OPTIONS, h, hosts,
                                                        cutter=cutter)] for h in range(hosts)]
    seen = {}
    for h in range(hosts):
      for b in batches[h]:
        for i, m, p in zip(b["id"], b["mask"], b["position"]):
          if m:
            assert i not in seen and ids[p] == i
            seen[i] = p
    assert len(seen) == len(source)
    shapes = [lengths.shape(b) for b in batches[0]]
    assert {lengths.shape(b) for h in range(hosts) for b in batches[h]} == set(shapes)
    text = [s[0] for s in shapes]  # The first sort key: the text buckets ascend.
    assert text == sorted(text) and text[0] < 16


def test_eval_and_unlabelled_batches_are_cut_too(sources):
  buckets = lengths.Buckets.make(BUCKETS, (16, 24, 20))
  test = sources["test"]
  short = input_pipeline.SubsetSource(test, [i for i in range(len(test)) if max(
      lengths.example_lengths(test[i])[0] - 8, 0) == 0][:12])
  for hosts in (1, 2):
    got = [b for h in range(hosts) for b in input_pipeline.eval_batches(
        short, 8, OPTIONS, h, hosts, cutter=input_pipeline.Cutter(short, buckets))]
    assert {lengths.shape(b)[0] for b in got} == {8}
    assert sorted(i for b in got for i, m in zip(b["id"], b["mask"]) if m) == sorted(
        input_pipeline.decode(short[i])["id"] for i in range(len(short)))
  pool = sources["unlabeled"]
  cut = input_pipeline.UnlabeledStream(pool, 8, 5, OPTIONS,
                                       cutter=input_pipeline.Cutter(pool, buckets))
  plain = input_pipeline.UnlabeledStream(pool, 8, 5, OPTIONS)
  for step in range(6):
    b, p = next(cut.iterator(step)), next(plain.iterator(step))
    assert lengths.shape(b) == buckets.fit(np.array([_longest(p)]))
    np.testing.assert_array_equal(lengths.pad(b, (16, 24, 20))["vision"], p["vision"])


def test_streams_take_buckets_and_grouping_from_the_config(sources, caplog):
  config = smoke_config()
  config.data.text_buckets, config.data.vision_buckets = (8, 12), (10,)
  config.data.group_by_length = True
  streams = input_pipeline.Streams(config, sources, process_index=0, process_count=1)
  assert streams.train.cutter.buckets.all == ((8, 12, 16), (24,), (10, 20))
  assert streams.train.group_chunk == config.data.group_chunk
  assert streams.unlabeled.cutter is not None and streams.cutter("test") is not None
  config.data.text_buckets = config.data.vision_buckets = (40,)  # Beyond the padded lengths.
  with caplog.at_level("WARNING"):
    streams = input_pipeline.Streams(config, sources, process_index=0, process_count=1)
  assert "the batches are neither cut nor grouped" in caplog.text
  assert streams.train.cutter is None and streams.train.group_chunk is None
  assert streams.cutter("valid") is None
  assert _ids(streams.train.iterator(0)) == _ids(
      input_pipeline.TrainStream(sources["train"], 8, config.seed, OPTIONS).iterator(0))
