"""The test-time corruptions: each does what its name says to the valid part of a batch
only, draws the same for an example wherever it sits, and a malformed one is named."""

import numpy as np
import pytest

from mird_jax.evaluation import corruptions


def _batch(seed=0, n=6, t_text=7, t=30, d=3):
  rng = np.random.default_rng(seed)
  b = {"text_ids": rng.integers(5, 99, (n, t_text)).astype(np.int32),
       "text_type": np.zeros((n, t_text), np.int32), "position": np.arange(n, dtype=np.int32),
       "mask": np.ones(n, np.float32), "label": rng.normal(size=n).astype(np.float32)}
  text_len = rng.integers(1, t_text + 1, n)
  b["text_mask"] = (np.arange(t_text)[None] < text_len[:, None]).astype(np.int32)
  b["text_ids"] *= b["text_mask"]
  for m in ("audio", "vision"):
    length = rng.integers(1, t + 1, n).astype(np.int32)
    valid = np.arange(t)[None, :, None] < length[:, None, None]
    b[m] = np.where(valid, rng.normal(2.0, 3.0, (n, t, d)), 0.0).astype(np.float32)
    b[f"{m}_len"] = length
  return b


def _std(b):
  return corruptions.feature_std([b])


def test_feature_std_is_over_valid_frames_of_real_examples():
  b = _batch()
  b["mask"][-1] = 0.0
  b["audio"][-1] = 1e6  # A padding example's frames never count.
  valid = np.concatenate([b["audio"][i, :b["audio_len"][i]] for i in range(5)])
  np.testing.assert_allclose(_std(b)["audio"], valid.std(0), rtol=1e-4)


def test_removing_a_modality():
  b = _batch()
  out = corruptions.apply(b, "remove:audio", 1, 0, _std(b))
  assert not out["audio"].any() and (out["audio_len"] == 1).all()
  np.testing.assert_array_equal(out["vision"], b["vision"])  # The others untouched,
  assert b["audio"].any()  # and the input batch too.
  text = corruptions.apply(b, "remove:text", 1, 0, _std(b))
  n = b["text_mask"].sum(1)
  assert (text["text_mask"].sum(1) == np.minimum(n, 2)).all()
  np.testing.assert_array_equal(text["text_ids"][:, 0], b["text_ids"][:, 0])  # [CLS]
  two = n >= 2
  np.testing.assert_array_equal(text["text_ids"][two, 1],
                                b["text_ids"][two, n[two] - 1])  # [SEP]
  assert not text["text_ids"][:, 2:].any()


def test_noise_is_scaled_by_the_feature_std_on_valid_frames_only():
  b = _batch(t=400)
  std = _std(b)
  out = corruptions.apply(b, "noise:0.5", 3, 0, std)
  for m in ("audio", "vision"):
    valid = np.arange(400)[None, :] < b[f"{m}_len"][:, None]
    diff = (out[m] - b[m])
    assert not diff[~valid].any()
    np.testing.assert_allclose(diff[valid].std(0), 0.5 * std[m], rtol=0.1)
  np.testing.assert_array_equal(out["text_ids"], b["text_ids"])
  same = corruptions.apply(b, "noise:0.5", 3, 0, std)
  np.testing.assert_array_equal(same["audio"], out["audio"])  # Repeatable,
  assert not np.array_equal(corruptions.apply(b, "noise:0.5", 3, 1, std)["audio"],
                            out["audio"])  # and the seed moves it.
  # An example draws by its dataset position, not by its row in a batch.
  first = {k: v[2:3] for k, v in b.items()}
  np.testing.assert_array_equal(corruptions.apply(first, "noise:0.5", 3, 0, std)["audio"][0],
                                out["audio"][2])


def test_frame_drop_keeps_a_subsequence_in_order():
  b = _batch(t=400)
  out = corruptions.apply(b, "drop:0.25", 2, 0, _std(b))
  for m in ("audio", "vision"):
    for i in range(len(b["id"]) if "id" in b else 6):
      n, k = int(b[f"{m}_len"][i]), int(out[f"{m}_len"][i])
      assert 1 <= k <= n and not out[m][i, k:].any()
      rows = {tuple(r) for r in b[m][i, :n]}
      assert all(tuple(r) in rows for r in out[m][i, :k])
    kept = out[f"{m}_len"].sum() / b[f"{m}_len"].sum()
    assert kept == pytest.approx(0.75, abs=0.05)
  none = corruptions.apply(b, "drop:0.0", 2, 0, _std(b))
  np.testing.assert_array_equal(none["audio"], b["audio"])


@pytest.mark.parametrize("bad", ["remove:smell", "noise:-1", "noise:x", "drop:1.0", "blur:1",
                                 "clean:1"])
def test_malformed_conditions_are_named(bad):
  with pytest.raises(ValueError, match=f"robustness condition '{bad}'"):
    corruptions.parse(bad)
