"""Fills our linen BERT's params from a Hugging Face checkpoint (config.json + model.safetensors).

No torch: the weights are read with safetensors' numpy API. The name map is strict: a
parameter of ours with no checkpoint tensor, a tensor of a different shape, or a checkpoint
tensor nothing uses fails with a message naming it. Only BERT's pre-training heads (`cls.*`)
and the `position_ids` buffer may go unused, and they are logged.
"""

import pathlib
import re

from absl import logging
import flax
import numpy as np

from data_pipelines import encoders
from mird_jax.models import bert

# Pre-training heads, a buffer, and the pooler (a model that reads the hidden states only,
# MIB, has no pooler parameters; one that has them still needs them in the checkpoint).
_IGNORABLE = re.compile(r"(cls\..*|embeddings\.position_ids|pooler\..*)")
_LAYER_PARTS = {
    "attention_self/query": "attention.self.query",
    "attention_self/key": "attention.self.key",
    "attention_self/value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "attention_LayerNorm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_LayerNorm": "output.LayerNorm",
}
_TOP = {
    "word_embeddings/embedding": "embeddings.word_embeddings.weight",
    "position_embeddings/embedding": "embeddings.position_embeddings.weight",
    "token_type_embeddings/embedding": "embeddings.token_type_embeddings.weight",
    "embeddings_LayerNorm/scale": "embeddings.LayerNorm.weight",
    "embeddings_LayerNorm/bias": "embeddings.LayerNorm.bias",
    "pooler/kernel": "pooler.dense.weight",
    "pooler/bias": "pooler.dense.bias",
}
_LEAF = {"kernel": "weight", "bias": "bias", "scale": "weight"}


def hf_name(path: str) -> str:
  """Our param path ("layers_3/intermediate/kernel") -> the Hugging Face tensor name."""
  if path in _TOP:
    return _TOP[path]
  m = re.fullmatch(r"layers_(\d+)/(.+)/(kernel|bias|scale)", path)
  if not m or m.group(2) not in _LAYER_PARTS:
    raise KeyError(f"no Hugging Face name for BERT parameter {path!r}")
  return f"encoder.layer.{m.group(1)}.{_LAYER_PARTS[m.group(2)]}.{_LEAF[m.group(3)]}"


def resolve(path: str) -> pathlib.Path:
  """A local checkpoint directory, an installed encoder's name (data_pipelines/encoders.py:
  its package's directory, offline), or a hub id resolved through the transformers cache."""
  local = pathlib.Path(encoders.resolve(path))
  if local.is_dir():
    return local
  try:
    import huggingface_hub  # pylint: disable=g-import-not-at-top
    return pathlib.Path(huggingface_hub.snapshot_download(
        path, allow_patterns=["config.json", "model.safetensors", "*.txt", "tokenizer*"]))
  except Exception as e:  # pylint: disable=broad-except  # Offline, unknown id, no access.
    raise FileNotFoundError(f"bert.path={path!r}: not a local directory and not available "
                            f"from the Hugging Face cache ({type(e).__name__}: {e})") from e


def config_of(path: str, hidden_dropout: float, attention_dropout: float) -> bert.BertConfig:
  return bert.BertConfig.from_hf_json(resolve(path) / "config.json", hidden_dropout,
                                      attention_dropout)


def read_checkpoint(directory: pathlib.Path) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  file = directory / "model.safetensors"
  if not file.is_file():
    raise FileNotFoundError(f"{file}: no such file (only safetensors checkpoints are read)")
  tensors = load_file(str(file))
  # Pre-training checkpoints (BertForPreTraining) prefix the encoder with "bert.";
  # old TF-converted ones call LayerNorm's parameters gamma/beta.
  out = {}
  for name, value in tensors.items():
    name = name[len("bert."):] if name.startswith("bert.") else name
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    out[re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)] = value
  return out


def load(bert_params, path: str):
  """Returns `bert_params` (one BERT's subtree) with every leaf taken from the checkpoint."""
  directory = resolve(path)
  tensors = read_checkpoint(directory)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(bert_params), sep="/")
  used, problems, out = set(), [], {}
  for ours, value in flat.items():
    name = hf_name(ours)
    if name not in tensors:
      problems.append(f"missing {name} (for {ours}, shape {value.shape})")
      continue
    tensor = tensors[name].T if ours.endswith("kernel") else tensors[name]
    if tensor.shape != value.shape:
      problems.append(f"{name}: expected shape {value.shape} (for {ours}), found {tensor.shape}")
    out[ours] = np.asarray(tensor, dtype=value.dtype)
    used.add(name)
  unused = sorted(n for n in tensors if n not in used and not _IGNORABLE.fullmatch(n))
  problems += [f"unused checkpoint tensor {n}" for n in unused]
  if problems:
    raise ValueError(f"{directory / 'model.safetensors'} does not fit the configured BERT:\n  "
                     + "\n  ".join(problems))
  ignored = sorted(n for n in tensors if n not in used)
  if ignored:
    logging.info("BERT checkpoint %s: ignored %d pre-training tensors (%s ...)", directory,
                 len(ignored), ignored[0])
  return flax.traverse_util.unflatten_dict(out, sep="/")
