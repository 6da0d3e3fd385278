"""The public PyTorch code's weights in our parameter trees.

`mird` reads a state_dict of the public MIRD model (qianfan1996/MIRD's `WSABERTReconMIM`,
its names as `model.state_dict()` gives them) and, optionally, its six CLUB estimators
(their own state_dicts, each name prefixed `club_<x>_<y>.`, e.g. `club_s_a.p_mu.0.weight`;
the public script calls them model2 .. model7 in the order l_a, l_v, a_v, s_l, s_a, s_v).
Estimators absent from the state keep the params they had.

mird-jax never imports torch, so the state comes as numpy arrays. Where the public code
runs, one line writes them (the public scripts save whole modules with `torch.save`):
  np.savez("state.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
`read_state` opens such a file without pickle. The map is strict: a name we need that the
state lacks, a shape that differs, or a state tensor nothing reads stops with one line
naming each.
"""

import pathlib
import re

import flax
import numpy as np

from mird_jax.models import bert_loading

_SHOWN = 12  # Problems named in the error; the rest are counted.
_IGNORABLE = re.compile(r".*embeddings\.position_ids")  # A buffer, not a weight.
_FUSION = {"audio_key": "W_a", "audio_proj": "W_a_", "audio_gate": "W_ha",
           "vision_key": "W_v", "vision_proj": "W_v_", "vision_gate": "W_hv",
           "LayerNorm": "LayerNorm"}
_MIRD_MODULES = {"proj_l": "encoder_l.encoder", "proj_s": "mult_encoder.encoder",
                 "enc_audio": "encoder_a", "enc_vision": "encoder_v",
                 "dec_text": "decoder_l", "dec_audio": "decoder_a", "dec_vision": "decoder_v",
                 "reg_hidden": "zy_to_y_fc1", "reg_out": "zy_to_y_fc2"}
_CLUB = {"mu_hidden": "p_mu.0", "mu_out": "p_mu.2", "logvar_hidden": "p_logvar.0",
         "logvar_out": "p_logvar.2"}
_LSTM_CELL = re.compile(r"(.+?)/(?:OptimizedLSTMCell_0|TorchLSTMCell_0|lstm/cell)/(\w+)/(\w+)")


def read_state(path) -> dict[str, np.ndarray]:
  """{name: array} from an .npz of a state_dict (read without pickle)."""
  with np.load(pathlib.Path(path), allow_pickle=False) as f:
    return dict(f)


def _same(x):
  return x


def _leaf(prefix: str, leaf: str):
  """(state names, conversion) of one Dense/LayerNorm/Embed leaf of torch module `prefix`."""
  if leaf == "kernel":
    return (f"{prefix}.weight",), lambda w: w.T
  return (f"{prefix}.{'bias' if leaf == 'bias' else 'weight'}",), _same


def _lstm(prefix: str, part: str, leaf: str):
  """torch.nn.LSTMCell `prefix` -> Flax's cell (part ii..io, hi..ho: per gate, one bias,
  the sum of torch's two) or our TorchLSTMCell (part ih, hh: torch's own layout)."""
  if part in ("ih", "hh"):
    return (f"{prefix}.{leaf.replace('kernel', 'weight')}_{part}",), (
        (lambda w: w.T) if leaf == "kernel" else _same)
  gate = "ifgo".index(part[1])

  def rows(w):
    h = w.shape[0] // 4
    return w[gate * h:(gate + 1) * h]
  if leaf == "bias":
    return (f"{prefix}.bias_ih", f"{prefix}.bias_hh"), lambda a, b: rows(a) + rows(b)
  source = "ih" if part[0] == "i" else "hh"
  return (f"{prefix}.weight_{source}",), lambda w: rows(w).T


def mird_source(path: str, fusion: str = "wsa"):
  """(public state names, conversion) of our MIRD param `path` ("fusion/audio_key/kernel")."""
  top, _, rest = path.partition("/")
  if top in ("bert_l", "bert_s"):
    prefix = "encoder_l.bert." if top == "bert_l" else "mult_encoder.model."
    name = bert_loading.hf_name(rest)
    return (prefix + name,), (lambda w: w.T) if rest.endswith("kernel") else _same
  if top == "fusion":
    module, leaf = rest.split("/")
    return _leaf(f"mult_encoder.model.{fusion.upper()}.{_FUSION[module]}", leaf)
  if top.startswith("club_"):
    module, leaf = rest.split("/")
    return _leaf(f"{top}.{_CLUB[module]}", leaf)
  m = _LSTM_CELL.fullmatch(path)
  if m:
    return _lstm(f"{_MIRD_MODULES[m.group(1)]}.lstm", m.group(2), m.group(3))
  module, leaf = path.rsplit("/", 1)
  module = module.replace("/output", ".fc1").replace("/proj", ".fc1")
  head, _, tail = module.partition(".")
  return _leaf(_MIRD_MODULES[head] + (f".{tail}" if tail else ""), leaf)


def convert(params, state: dict, source, label: str, keep=lambda path: False):
  """`params` (arrays, or shapes: jax.eval_shape of an init) with every leaf taken from
  `state` through `source(path)` -> (names, fn); leaves where `keep(path)` stay as they
  are. Raises one line naming the problems."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  out, used, problems = {}, set(), []
  for path, value in flat.items():
    if keep(path):
      out[path] = value
      continue
    names, fn = source(path)
    absent = [n for n in names if n not in state]
    if absent:
      problems += [f"missing {n} (for {path} {tuple(value.shape)})" for n in absent]
      continue
    used.update(names)
    array = np.asarray(fn(*(np.asarray(state[n]) for n in names)))
    if array.shape != tuple(value.shape):
      problems.append(f"{'+'.join(names)}: shape {array.shape}, expected "
                      f"{tuple(value.shape)} for {path}")
      continue
    out[path] = array.astype(value.dtype)
  problems += [f"unused {n}" for n in sorted(state)
               if n not in used and not _IGNORABLE.fullmatch(n)]
  if problems:
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    raise ValueError(f"{label} does not fit the model ({len(problems)} problems): "
                     + "; ".join(problems[:_SHOWN]) + more)
  return flax.traverse_util.unflatten_dict(out, sep="/")


def mird(params, state: dict, fusion: str = "wsa", label: str = "public MIRD state"):
  """Our MIRD `params` filled from a public `WSABERTReconMIM` state (and `club_*`
  estimators where the state has them); `fusion` is the model's (wsa | wa: the public
  module is then `WSA` or `WA`)."""
  has_club = any(n.startswith("club_") for n in state)
  return convert(params, state, lambda p: mird_source(p, fusion), label,
                 keep=lambda path: path.startswith("club_") and not has_club)
