"""The public PyTorch code's weights in our parameter trees.

`mird` reads a state_dict of the public MIRD model (qianfan1996/MIRD's `WSABERTReconMIM`,
its names as `model.state_dict()` gives them) and, optionally, its six CLUB estimators
(their own state_dicts, each name prefixed `club_<x>_<y>.`, e.g. `club_s_a.p_mu.0.weight`;
the public script calls them model2 .. model7 in the order l_a, l_v, a_v, s_l, s_a, s_v).
Estimators absent from the state keep the params they had.

`mib` reads a state_dict of the public MIB model of one variant file (cmib.py, emib.py or
lmib.py of TmacMai/Multimodal-Information-Bottleneck). Those files build modules their
forward never calls (E-MIB's unimodal heads, L-MIB's fused one, the tensor class's LSTMs
and norms, a second text convolution); their tensors are recognised and skipped.

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
# Our Dense layers and LSTM owners -> the public modules.
_MIRD_DENSE = {"proj_l": "encoder_l.encoder", "proj_s": "mult_encoder.encoder",
               "enc_audio/proj": "encoder_a.fc1", "enc_vision/proj": "encoder_v.fc1",
               "dec_text/output": "decoder_l.fc1", "dec_audio/output": "decoder_a.fc1",
               "dec_vision/output": "decoder_v.fc1", "reg_hidden": "zy_to_y_fc1",
               "reg_out": "zy_to_y_fc2"}
_MIRD_LSTM = {"enc_audio": "encoder_a", "enc_vision": "encoder_v", "dec_text": "decoder_l",
              "dec_audio": "decoder_a", "dec_vision": "decoder_v"}
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
    return _lstm(f"{_MIRD_LSTM[m.group(1)]}.lstm", m.group(2), m.group(3))
  module, leaf = path.rsplit("/", 1)
  if module not in _MIRD_DENSE:
    raise KeyError(f"no public MIRD name for {path!r}")
  return _leaf(_MIRD_DENSE[module], leaf)


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


# MIB: our module -> the public one, and what each variant file builds but never calls.
_MIB_HEAD = {"hidden": "encoder{m}.0", "mu": "fc_mu{m}", "scale": "fc_std{m}",
             "decoder": "decoder{m}"}
_MIB_UNUSED = {
    "all": r"trans[av]\.(version|embed_positions\._float_tensor)|fusion\.fusion1\..*",
    "early": r"proj_l\.weight|fusion\.(encoder_[lav]\.0|fc_(mu|std)_[lav]|decoder_[lav])\..*",
    "late": r"proj_l\.weight|BN\..*|fusion\.(encoder\.0|fc_mu|fc_std)\..*",
    "complete": r"$^",
}


def _conv(w):
  """torch Conv1d [out, in, k] -> Flax Conv [k, in, out]."""
  return w.transpose(2, 1, 0)


def _attention(prefix: str, part: str, leaf: str, heads: int):
  """fairseq's stacked in_proj ([3W, W] rows q, k, v) and out_proj -> Flax's per-head
  query/key/value [W, heads, W/heads] and out [heads, W/heads, W]."""
  if part == "out":
    if leaf == "bias":
      return (f"{prefix}.out_proj.bias",), _same
    return (f"{prefix}.out_proj.weight",), lambda w: w.T.reshape(heads, -1, w.shape[0])
  k = ("query", "key", "value").index(part)

  def rows(w):
    width = w.shape[0] // 3
    return w[k * width:(k + 1) * width]
  if leaf == "bias":
    return (f"{prefix}.in_proj_bias",), lambda b: rows(b).reshape(heads, -1)
  return (f"{prefix}.in_proj_weight",), lambda w: rows(w).T.reshape(w.shape[1], heads, -1)


def mib_source(path: str, heads: int):
  """(public state names, conversion) of our MIB param `path`."""
  top, _, rest = path.partition("/")
  if top == "bert":
    return ("bert." + bert_loading.hf_name(rest),), (
        (lambda w: w.T) if rest.endswith("kernel") else _same)
  if top == "proj_l":
    return ("bert.proj_l.weight",), _conv
  if top.startswith("enc_"):
    enc = "transa" if top == "enc_audio" else "transv"
    if rest == "proj/conv/kernel":
      return ("proj_a.weight" if top == "enc_audio" else "proj_v.weight",), _conv
    if rest.startswith("ln_final/"):
      return _leaf(f"{enc}.layer_norm", rest.split("/")[1])
    layer, module, *tail = rest.split("/")
    prefix = f"{enc}.layers.{layer.split('_')[1]}"
    if module == "attn":
      return _attention(f"{prefix}.self_attn", tail[0], tail[1], heads)
    names = {"ln_attn": "layer_norms.0", "ln_ffn": "layer_norms.1", "fc1": "fc1", "fc2": "fc2"}
    return _leaf(f"{prefix}.{names[module]}", tail[0])
  if top.startswith("ib_"):
    m = "" if top == "ib_f" else f"_{top[3]}"
    module, leaf = rest.split("/")
    return _leaf("fusion." + _MIB_HEAD[module].format(m=m), leaf)
  if top == "fusion":
    module, leaf = rest.split("/")
    public = ("linear_1" if module == "concat" else
              "post_fusion_layer_" + module.split("_")[1])
    return _leaf(f"fusion.fusion1.{public}", leaf)
  if top == "out":  # L-MIB's fused prediction.
    return _leaf("fusion.decoder", rest)
  raise KeyError(f"no public MIB name for {path!r}")


def mib(params, state: dict, variant: str, heads: int, label: str = "public MIB state"):
  """Our MIB `params` of `variant` (complete | early | late, the public cmib.py | emib.py |
  lmib.py) filled from that file's `MIB` state; `heads` is the encoders' head count."""
  skip = re.compile(f"{_MIB_UNUSED['all']}|{_MIB_UNUSED[variant]}")
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  used = {n for path in flat for n in mib_source(path, heads)[0]}
  state = {n: v for n, v in state.items() if n in used or not skip.fullmatch(n)}
  return convert(params, state, lambda p: mib_source(p, heads), label)
