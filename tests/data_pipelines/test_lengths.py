"""Length buckets and length-grouped orders (data_pipelines/lengths.py): plain NumPy."""

import numpy as np
import pytest

from data_pipelines import lengths


def _batch(text_lens, audio_lens, vision_lens, t=10, a=8, v=6):
  """A canonical batch, zero-padded behind the given lengths (values never zero inside)."""
  n = len(text_lens)
  mask = (np.arange(t)[None] < np.asarray(text_lens)[:, None]).astype(np.int32)
  frames = lambda lens, steps, d: np.where(
      (np.arange(steps)[None, :, None] < np.asarray(lens)[:, None, None]),
      np.random.default_rng(0).uniform(1, 2, (n, steps, d)), 0.0).astype(np.float32)
  return {"text_ids": mask * 7, "text_mask": mask, "text_type": mask * 0,
          "audio": frames(audio_lens, a, 3), "audio_len": np.asarray(audio_lens, np.int32),
          "vision": frames(vision_lens, v, 2), "vision_len": np.asarray(vision_lens, np.int32),
          "label": np.zeros(n, np.float32)}


def test_buckets_end_at_the_padded_length_and_fit_the_longest_sequence():
  b = lengths.Buckets.make(((16, 4, 8, 50, 70), (), (3,)), (50, 20, 6))
  assert b.all == ((4, 8, 16, 50), (20,), (3, 6)) and b.trims
  assert b.fit([[4, 20, 3], [2, 1, 1]]) == (4, 20, 3)
  assert b.fit([[5, 1, 1]]) == (8, 20, 3)  # The smallest bucket that holds 5 is 8, not 16.
  assert b.fit([[17, 1, 4], [1, 1, 1]]) == (50, 20, 6)
  assert b.index([[4, 1, 3], [5, 20, 4]]).tolist() == [[0, 0, 0], [1, 0, 1]]
  with pytest.raises(ValueError, match="exceed the padded lengths"):
    b.fit([[51, 1, 1]])
  assert not lengths.Buckets.make(((), (20,), ()), (50, 20, 6)).trims


def test_example_lengths_read_the_last_real_token_and_the_frame_counts():
  ex = {"text_mask": np.array([1, 1, 0, 1, 0, 0]), "audio_len": np.int32(3),
        "vision_len": 5}
  assert lengths.example_lengths(ex) == (4, 3, 5)
  assert lengths.example_lengths(dict(ex, text_mask=np.zeros(6)))[0] == 1


def test_cutting_removes_padding_only_and_padding_restores_the_batch():
  full = _batch([3, 7], [2, 5], [1, 4])
  shape = (7, 5, 4)
  cut = lengths.trim(full, shape)
  assert [cut[k].shape[1] for k in ("text_ids", "text_mask", "audio", "vision")] == [7, 7, 5, 4]
  assert cut["audio_len"] is full["audio_len"] and cut["label"] is full["label"]
  assert lengths.shape(cut) == shape and lengths.shape(full) == (10, 8, 6)
  assert lengths.common_shape(cut, None, lengths.trim(full, (3, 8, 2))) == (7, 8, 4)
  back = lengths.pad(cut, (10, 8, 6))
  for k, v in full.items():
    np.testing.assert_array_equal(back[k], v, err_msg=k)
  with pytest.raises(ValueError, match="text_ids has 7 steps, more than 5"):
    lengths.pad(cut, (5, 8, 6))


def _cost(order, index, batch):
  """Mean over batches of the largest text bucket index in each."""
  return np.mean([index[rows, 0].max() for rows in order.reshape(-1, batch)])


def test_grouped_order_is_a_seeded_rearrangement_of_whole_batches_of_similar_length():
  rng = np.random.default_rng(0)
  n, batch = 203, 8
  text = np.minimum(rng.geometric(0.15, n), 50)  # Skewed, like real transcripts.
  table = np.stack([text, np.ones(n), np.ones(n)], 1)
  index = lengths.Buckets.make(((8, 16, 24, 32, 40), (), ()), (50, 1, 1)).index(table)
  order = rng.permutation(n)
  grouped = lengths.grouped_order(order, index, batch, 4, seed=1)
  kept = len(order) // batch * batch
  assert sorted(grouped) == sorted(order[:kept])  # The same examples, each once.
  assert np.array_equal(grouped, lengths.grouped_order(order, index, batch, 4, seed=1))
  assert not np.array_equal(grouped, lengths.grouped_order(order, index, batch, 4, seed=2))
  # Grouping lowers the buckets paid; one chunk of the whole epoch lowers them most.
  whole = lengths.grouped_order(order, index, batch, 0, seed=1)
  assert _cost(whole, index, batch) <= _cost(grouped, index, batch) < 0.8 * _cost(
      order[:kept], index, batch)
  # Within a chunk the batches come from its examples only (a chunk is 4 batches).
  chunks = [set(order[i:i + 4 * batch]) for i in range(0, kept, 4 * batch)]
  for rows in grouped.reshape(-1, batch):
    assert any(set(rows) <= c for c in chunks)


def test_cost_is_the_share_of_padded_positions():
  share = lengths.cost([[10, 4, 6], [20, 8, 6]], (20, 8, 6))
  np.testing.assert_allclose(share, [0.75, 0.75, 1.0])
