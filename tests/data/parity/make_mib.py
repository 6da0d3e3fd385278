r"""Writes tests/data/parity/mib.npz: the public MIB code's weights, inputs and outputs for
each variant (C-MIB cmib.py, E-MIB emib.py, L-MIB lmib.py), and one train step of each.

Run by hand in the venv of make_mird.py (torch, transformers 3.0.2):
  git clone https://github.com/TmacMai/Multimodal-Information-Bottleneck /tmp/MIB
  /tmp/ref/bin/python tests/data/parity/make_mib.py --mib /tmp/MIB/MIB_github

The public modules are imported from that checkout as they are. Shimmed: the CUDA tensor
type and `.cuda()`, an in-place scaling that torch after 1.4 refuses, the feature sizes
of global_configs.py (text 16, vision 4), the sizes written as literals in the modules,
mapped while the model is built (width 50 -> 10, hidden 1024 -> 16, audio 74 -> 3, 3 x width -> 3 x 10, the tensor fusion's 51^3 -> 11^3),
the encoders' depth (3 -> 1 layer), every dropout (0, so one pass is deterministic) and
the two Adam optimisers' learning rates (1e-2 and 2e-2, so an update stands far above
round-off). Every bottleneck's scale pre-activation is moved to about -35, so sigma is
about 1e-15 and the public code's random draw changes nothing: z = mu on both sides. The
train step is the public MIB.forward (it steps its own optimisers).
tests/models/test_parity_mib.py and tests/training/test_parity_mib_step.py read this file.
"""

import argparse
import importlib
import os
import pathlib
import sys
import tempfile

import numpy as np
import provenance

SIZES = dict(batch=4, text_len=6, audio_len=5, audio_dim=3, vision_len=4, vision_dim=4,
             vocab=40, hidden=16, layers=1, heads=2, intermediate=32, width=10,
             ib_hidden=16, mib_heads=5)
LITERALS = {50: 10, 150: 30, 1024: 16, 74: 3, 51 ** 3: 11 ** 3}  # Public size -> ours.
LR_BERT, LR_MAIN = 1e-2, 2e-2
VARIANTS = {"complete": "cmib", "early": "emib", "late": "lmib"}


def _shim(mib_dir: pathlib.Path):
  import torch  # pylint: disable=g-import-not-at-top
  torch.Tensor.cuda = lambda self, *a, **k: self
  torch.cuda.FloatTensor = torch.FloatTensor
  sys.path.insert(0, str(mib_dir))
  import global_configs  # pylint: disable=g-import-not-at-top
  global_configs.TEXT_DIM, global_configs.VISUAL_DIM = SIZES["hidden"], SIZES["vision_dim"]
  global_configs.DEVICE = torch.device("cpu")
  # torch >= 1.5 refuses the in-place `q *= scaling` on a view that chunk() returned (torch
  # 1.4, the public pin, allowed it): the same values, as separate tensors.
  from modules import multihead_attention  # pylint: disable=g-import-not-at-top
  qkv = multihead_attention.MultiheadAttention.in_proj_qkv
  multihead_attention.MultiheadAttention.in_proj_qkv = (
      lambda self, query: tuple(c.clone() for c in qkv(self, query)))
  return {v: importlib.import_module(name) for v, name in VARIANTS.items()}


def _mapped_sizes(module):
  """A context in which nn.Linear/Conv1d and the encoders take our sizes for the public
  literals (only while the public model is built)."""
  import torch  # pylint: disable=g-import-not-at-top
  originals = (torch.nn.Linear.__init__, torch.nn.Conv1d.__init__, module.TransformerEncoder)
  size = lambda n: LITERALS.get(n, n)

  def linear(self, i, o, *a, **k):
    originals[0](self, size(i), size(o), *a, **k)

  def conv(self, i, o, *a, **k):
    originals[1](self, size(i), size(o), *a, **k)

  class Encoder(originals[2]):
    def __init__(self, embed_dim, num_heads, layers, **k):
      super().__init__(size(embed_dim), num_heads, 1, **k)

  class Context:
    def __enter__(self):
      torch.nn.Linear.__init__, torch.nn.Conv1d.__init__ = linear, conv
      module.TransformerEncoder = Encoder

    def __exit__(self, *exc):
      torch.nn.Linear.__init__, torch.nn.Conv1d.__init__ = originals[:2]
      module.TransformerEncoder = originals[2]
  return Context()


def _no_dropout(model):
  import torch  # pylint: disable=g-import-not-at-top
  for m in model.modules():
    if isinstance(m, torch.nn.Dropout):
      m.p = 0.0
    for attr in ("dropout", "attn_dropout", "relu_dropout", "res_dropout"):
      if isinstance(getattr(m, attr, None), float):
        setattr(m, attr, 0.0)


def _build(module, bert_dir, seed):
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  with _mapped_sizes(module):
    model = module.MIB.from_pretrained(bert_dir, multimodal_config=None, num_labels=1)
  _no_dropout(model)
  with torch.no_grad():
    for p in model.parameters():  # Away from the init's small scales.
      p.add_(torch.randn_like(p) * 0.3)
    for name, m in model.fusion.named_modules():
      if name.startswith("fc_std"):  # sigma ~ softplus(-35): z = mu, whatever the draw.
        m.weight.mul_(0.01)
        m.bias.fill_(-30.0)
  for opt, lr in ((model.optimizer_l, LR_BERT), (model.optimizer_all, LR_MAIN)):
    for group in opt.param_groups:
      group["lr"] = lr
  return model


def _inputs(rng):
  s = SIZES
  n = s["batch"]
  ids = rng.integers(1, s["vocab"], size=(n, s["text_len"]))
  return dict(
      text_ids=ids.astype(np.int64), text_mask=np.ones_like(ids), text_type=np.zeros_like(ids),
      audio=rng.normal(0, 1.5, (n, s["audio_len"], s["audio_dim"])).astype(np.float32),
      vision=rng.normal(0, 1.5, (n, s["vision_len"], s["vision_dim"])).astype(np.float32),
      labels=rng.uniform(-3, 3, n).astype(np.float32))


def _record_forward(model, x, out, prefix):
  """model.test(...) with hooks on the parts our tests check one by one."""
  import torch  # pylint: disable=g-import-not-at-top
  t = {k: torch.from_numpy(v) for k, v in x.items()}
  hooks = []
  parts = {"bert": "x_l", "transa": "seq_a", "transv": "seq_v", "fusion.fusion1": "fused"}
  for m in "lav":
    parts.update({f"fusion.fc_mu_{m}": f"mu_{m}", f"fusion.fc_std_{m}": f"scale_{m}",
                  f"fusion.decoder_{m}": f"pred_{m}"})
  parts.update({"fusion.fc_mu": "mu_f", "fusion.fc_std": "scale_f", "fusion.decoder": "pred_f"})
  modules = dict(model.named_modules())
  for name, key in parts.items():
    hooks.append(modules[name].register_forward_hook(
        lambda mod, inp, o, key=key: out.__setitem__(f"{prefix}/{key}", o.detach().numpy())))
  model.eval()
  with torch.no_grad():
    pred = model.test(t["text_ids"], t["vision"], t["audio"], token_type_ids=t["text_type"],
                      attention_mask=t["text_mask"])
  out[f"{prefix}/pred"] = pred.numpy()
  for h in hooks:
    h.remove()


def _step(model, x, out, prefix, w0):
  """One public MIB.forward in train mode: its losses, gradients and updated weights."""
  import torch  # pylint: disable=g-import-not-at-top
  t = {k: torch.from_numpy(v) for k, v in x.items()}
  losses, grads = [], {}
  original = model.fusion.loss_function

  def recording(*a):
    value = original(*a)
    losses.append(value.item())
    return value
  model.fusion.loss_function = recording
  step = model.optimizer_all.step

  def recording_step(*a, **k):
    grads.update({n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()
                  if p.grad is not None})
    return step(*a, **k)
  model.optimizer_all.step = recording_step
  backward, totals = torch.Tensor.backward, []

  def recording_backward(self, *a, **k):  # The total MIB.forward differentiates.
    totals.append(self.item())
    return backward(self, *a, **k)
  torch.Tensor.backward = recording_backward
  model.train()
  try:
    model(t["text_ids"], t["vision"], t["audio"], t["labels"], token_type_ids=t["text_type"],
          attention_mask=t["text_mask"])
  finally:
    torch.Tensor.backward = backward
  out[f"{prefix}/total_loss"] = np.array(totals[0])
  out[f"{prefix}/bottleneck_losses"] = np.array(losses)  # beta KL + L1 per loss_function call.
  for name, g in grads.items():
    out[f"{prefix}/grad/{name}"] = g
  # Only what the public forward reads: the variant files build modules they never call
  # (E-MIB's unimodal heads, L-MIB's fused one, the tensor class's LSTMs...), listed by name.
  state = model.state_dict()
  out[f"{prefix}/unused"] = np.array("\n".join(n for n in state if n not in grads))
  for name in grads:
    out[f"{prefix}/w0/{name}"] = w0[name]
    out[f"{prefix}/w1/{name}"] = state[name].numpy().copy()


def _tensor_modules(modules, out):
  """The public fusions alone at width 4, dropout off: the tensor fusions (C-MIB's and
  L-MIB's heads), and C-MIB's file's sum, product and concat."""
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  x = {m: rng.normal(size=(3, 4)).astype(np.float32) for m in "lav"}
  out.update({f"tensor/x_{m}": v for m, v in x.items()})
  for variant in ("complete", "late"):
    torch.manual_seed(3)
    fusion = modules[variant].tensor(4, 4, hidden=4, dropout=0.0).eval()
    with torch.no_grad():
      for p in fusion.parameters():
        p.normal_(0, 0.3)
      y = fusion(*(torch.from_numpy(x[m]) for m in "lav"))
    for name, value in fusion.state_dict().items():
      out[f"tensor/{variant}/w/{name}"] = value.numpy().copy()
    out[f"tensor/{variant}/out"] = y.numpy()
  for name in ("addition", "multiplication", "concat"):  # C-MIB's other fusions.
    torch.manual_seed(4)
    fusion = getattr(modules["complete"], name)(4, 4).eval()
    with torch.no_grad():
      y = fusion(*(torch.from_numpy(x[m]) for m in "lav"))
    if name == "concat":  # The others use none of the modules they build.
      for key, value in fusion.state_dict().items():
        out[f"fusion/{name}/w/{key}"] = value.numpy().copy()
    out[f"fusion/{name}/out"] = y.numpy()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mib", required=True, help="MIB_github/ of a checkout of "
                      "TmacMai/Multimodal-Information-Bottleneck")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "mib.npz"))
  flags = parser.parse_args()
  mib_dir = pathlib.Path(flags.mib).resolve()
  source = provenance.meta(mib_dir)
  commit = str(source["meta/commit"])
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  modules = _shim(mib_dir)
  s = SIZES
  bert_dir = tempfile.mkdtemp()
  torch.manual_seed(0)
  transformers.BertModel(transformers.BertConfig(
      vocab_size=s["vocab"], hidden_size=s["hidden"], num_hidden_layers=s["layers"],
      num_attention_heads=s["heads"], intermediate_size=s["intermediate"],
      max_position_embeddings=16, hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0)).save_pretrained(bert_dir)
  out = {**source,
         "meta/torch": np.array(torch.__version__),
         "meta/transformers": np.array(transformers.__version__),
         **{f"size/{k}": np.array(v) for k, v in SIZES.items()},
         "optim/lr_bert": np.array(LR_BERT), "optim/lr_main": np.array(LR_MAIN),
         "beta": np.array(modules["complete"].beta)}
  x = _inputs(np.random.default_rng(0))
  out.update({f"batch/{k}": v for k, v in x.items()})
  for i, variant in enumerate(VARIANTS):
    model = _build(modules[variant], bert_dir, seed=10 + i)
    w0 = {name: value.numpy().copy() for name, value in model.state_dict().items()}
    _record_forward(model, x, out, variant)
    _step(model, x, out, variant, w0)
  _tensor_modules(modules, out)
  np.savez_compressed(flags.out, **out)
  print(f"wrote {flags.out} ({os.path.getsize(flags.out) / 1024:.0f} KiB, {len(out)} arrays) "
        f"from MIB {commit[:7]}")


if __name__ == "__main__":
  main()
