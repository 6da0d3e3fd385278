"""Test setup: 8 faked CPU devices and strict rank promotion, before anything imports jax."""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]).strip()
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["HF_HUB_OFFLINE"] = "1"  # Nothing in the tests may reach the hub.
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import jax  # noqa: E402  (must come after the environment above)

jax.config.update("jax_numpy_rank_promotion", "raise")

import pytest  # noqa: E402

from data_pipelines import synthetic  # noqa: E402

# Small shapes shared by the data tests (MOSI-like dims, short sequences).
SMALL = dict(text_len=16, audio_len=24, audio_dim=5, vision_len=20, vision_dim=20,
             vocab_size=512)


@pytest.fixture(scope="session")
def small_spec():
  return synthetic.SyntheticSpec(n_train=40, n_valid=13, n_test=11, n_unlabeled=24, seed=3,
                                 neg_inf_frac=0.01, **SMALL)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, small_spec):
  """Small MMSA-format synthetic files, written once per session (read-only for tests)."""
  out = tmp_path_factory.mktemp("synthetic")
  synthetic.write(small_spec, out)
  return out


@pytest.fixture(scope="session")
def tokenizer_dir(synthetic_dir, tmp_path_factory):
  """A WordPiece tokenizer over the synthetic vocabulary, saved like a pretrained one."""
  import transformers  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("tokenizer")
  tok = transformers.BertTokenizerFast(vocab=str(synthetic_dir / "vocab.txt"),
                                       do_lower_case=True)
  tok.save_pretrained(str(out))
  return out
