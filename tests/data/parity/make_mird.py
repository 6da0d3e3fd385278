r"""Writes tests/data/parity/mird.npz: the public MIRD code's weights, inputs and outputs.

Run by hand, never by the tests or the library, in a throw-away venv with torch and the
transformers version the public code pins (3.0.2 installs on Python 3.11 without its
tokenizers pin, which nothing here uses):
  python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0 numpy six sacremoses \
      regex filelock requests tqdm sentencepiece tokenizers && \
      /tmp/ref/bin/pip install --no-deps transformers==3.0.2
  git clone https://github.com/qianfan1996/MIRD /tmp/MIRD   # the commit the fixture names
  /tmp/ref/bin/python tests/data/parity/make_mird.py --mird /tmp/MIRD

The public modules are imported from that checkout as they are. Only these are shimmed:
its script's imports that the step never uses (visdom, thop), its `.cuda()` calls, its
download of bert-base-uncased (a tiny random BERT saved to a temporary folder stands in),
its WSA/WA modules' hard-coded feature sizes (33, 709, 768), and its command line (tiny
sizes, every dropout 0, so that one pass is deterministic). The train step is the public
script's own `train_epoch`, fed two batches one at a time: a main AdamW update under its
scheduler, then 5 estimator Adam updates, twice. tests/models/test_parity_mird.py and
tests/training/test_parity_mird_step.py compare mird-jax against this file without torch.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import types

import numpy as np
import provenance

SIZES = dict(batch=3, unlabeled=2, text_len=6, audio_len=5, audio_dim=3, vision_len=4,
             vision_dim=4, vocab=160, hidden=16, layers=1, heads=2, intermediate=32,
             d_z=8, club_arg=8)  # club_arg: the script's --MIestimator_hidden_size (halved).
LR, MI_LR, STEPS = 1e-2, 1e-2, 2  # Large rates, so the updates are far above round-off.
PAIRS = {"l_a": "model2", "l_v": "model3", "a_v": "model4", "s_l": "model5", "s_a": "model6",
         "s_v": "model7"}


def _shim(mird_dir: pathlib.Path, bert_dir: str):
  """Imports the public script with its unused imports, .cuda() and hub download shimmed."""
  import torch  # pylint: disable=g-import-not-at-top
  sys.modules["visdom"] = types.SimpleNamespace(Visdom=lambda *a, **k: None)
  thop = types.ModuleType("thop")
  thop.clever_format = lambda *a, **k: None
  sys.modules["thop"], sys.modules["thop.profile"] = thop, types.SimpleNamespace(profile=None)
  torch.Tensor.cuda = lambda self, *a, **k: self
  s = SIZES
  sys.argv = ["run_training_recon_mim_sl.py", "--learning_rate", str(LR),
              "--mi_learning_rate", str(MI_LR), "--orig_d_a", str(s["audio_dim"]),
              "--orig_d_v", str(s["vision_dim"]), "--backbone_model", bert_dir,
              "--dropout_prob", "0", "--dropout_l", "0", "--dropout_multi", "0",
              "--zy_to_y_dropout", "0", "--output_dim_l", str(s["vocab"]),
              "--hidden_size_l", str(s["hidden"]), "--hidden_size_multi", str(s["hidden"]),
              "--MIestimator_hidden_size", str(s["club_arg"])]
  sys.argv += [x for k in ("zy", "zl", "za", "zv") for x in (f"--{k}_size", str(s["d_z"]))]
  sys.path.insert(0, str(mird_dir))
  import modules  # pylint: disable=g-import-not-at-top
  sizes = (s["audio_dim"], s["vision_dim"], s["hidden"])
  modules.WSA.__init__.__defaults__ = sizes
  modules.WA.__init__.__defaults__ = sizes
  import models  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  models.BertModel = types.SimpleNamespace(
      from_pretrained=lambda name, **k: transformers.BertModel.from_pretrained(bert_dir))
  import run_training_recon_mim_sl as script  # pylint: disable=g-import-not-at-top
  return script, modules


def _tiny_bert(directory: str):
  import transformers  # pylint: disable=g-import-not-at-top
  s = SIZES
  cfg = transformers.BertConfig(
      vocab_size=s["vocab"], hidden_size=s["hidden"], num_hidden_layers=s["layers"],
      num_attention_heads=s["heads"], intermediate_size=s["intermediate"],
      max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  transformers.BertModel(cfg).save_pretrained(directory)
  return cfg


def _batch(rng, n):
  s = SIZES
  ids = rng.integers(1, s["vocab"], size=(n, s["text_len"]))
  return dict(
      text_ids=ids.astype(np.int64), text_mask=np.ones_like(ids), text_type=np.zeros_like(ids),
      audio=rng.normal(0, 1.5, (n, s["audio_len"], s["audio_dim"])).astype(np.float32),
      vision=rng.normal(0, 1.5, (n, s["vision_len"], s["vision_dim"])).astype(np.float32))


def _torch_batches(labeled, unlabeled, labels):
  """The public loader's (labelled, unlabelled) tuples: unlabelled rows as [B, ratio, ...]."""
  import torch  # pylint: disable=g-import-not-at-top
  t = torch.from_numpy
  lab = (t(labeled["text_ids"]), t(labeled["text_mask"]), t(labeled["text_type"]),
         t(labeled["audio"]), t(labeled["vision"]), t(labels[:, None]))
  unl = tuple(t(unlabeled[k])[:, None] for k in ("text_ids", "text_mask", "text_type",
                                                 "audio", "vision"))
  return lab, unl


def _state(prefix, module, out):
  for name, value in module.state_dict().items():
    out[f"{prefix}/{name}"] = value.detach().numpy().copy()


def _record_losses(script, estimators, log):
  """Wraps the script's loss classes and the estimators' forward so that each main
  forward's terms land in `log`, computed by the public code itself."""
  def recording(cls, kind):
    class Recording(cls):
      def forward(self, *a):
        value = super().forward(*a)
        log.append((kind, value.item()))
        return value
    return Recording
  script.MSELoss = recording(script.MSELoss, "mse")
  script.CrossEntropyLoss = recording(script.CrossEntropyLoss, "ce")
  for pair, est in estimators.items():
    est.register_forward_hook(
        lambda m, inp, out, pair=pair: log.append((f"mi/{pair}", out.item())))


def _loading_report(script, bert_dir, reference_cls=None):
  """Which weights the public class leaves at their random start when it is loaded from
  a BERT checkpoint (docs/differences.md, the WSA-BERT row): a BertModel checkpoint, or
  with `reference_cls` BertForPreTraining, the layout of Google's bert-base-uncased
  (its names start with "bert.")."""
  import transformers  # pylint: disable=g-import-not-at-top
  args = script.args
  mm = script.MultimodalConfig(
      args.beta_shift, args.dropout_prob, args.orig_d_a, args.orig_d_v, args.zy_size,
      args.zl_size, args.za_size, args.zv_size, args.zy_to_y_dropout,
      args.language_encoder_use_lstm, args.output_dim_l, args.hidden_size_l, args.dropout_l,
      args.hidden_size_multi, args.dropout_multi, args.label_dim)
  model, info = script.WSABERTReconMIM.from_pretrained(
      bert_dir, multimodal_config=mm, model=args.multimodal_encoder, num_labels=1,
      output_loading_info=True)
  if reference_cls is None:
    reference = transformers.BertModel.from_pretrained(bert_dir).state_dict()
  else:
    reference = reference_cls.from_pretrained(bert_dir).bert.state_dict()
  loaded = model.state_dict()
  same = lambda prefix: all(bool((loaded[prefix + k] == v).all()) for k, v in reference.items()
                            if prefix + k in loaded)
  return (sorted(info["missing_keys"]), sorted(reference), same("encoder_l.bert."),
          same("mult_encoder.model."))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mird", required=True, help="a checkout of qianfan1996/MIRD")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "mird.npz"))
  flags = parser.parse_args()
  mird_dir = pathlib.Path(flags.mird).resolve()
  source = provenance.meta(mird_dir)  # Before the shims replace sys.argv.
  commit = str(source["meta/commit"])
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  bert_dir = tempfile.mkdtemp()
  _tiny_bert(bert_dir)
  script, modules = _shim(mird_dir, bert_dir)
  missing, checkpoint_keys, bert_l_loaded, bert_s_loaded = _loading_report(script, bert_dir)
  pretraining_dir = tempfile.mkdtemp()
  transformers.BertForPreTraining(transformers.BertConfig.from_pretrained(bert_dir)
                                  ).save_pretrained(pretraining_dir)
  *_, bert_s_from_pretraining = _loading_report(script, pretraining_dir,
                                                transformers.BertForPreTraining)
  torch.manual_seed(1)
  model, *ests, optimizer, mi_optimizer, scheduler = script.prep_for_training(STEPS)
  estimators = dict(zip(PAIRS, ests))
  with torch.no_grad():  # Away from the init's tiny scales, so sparsemax is sparse.
    for p in [*model.parameters(), *(q for e in ests for q in e.parameters())]:
      p.add_(torch.randn_like(p) * 0.3)
  out = {**source,
         "meta/torch": np.array(torch.__version__),
         "meta/transformers": np.array(transformers.__version__),
         "meta/missing_keys": np.array("\n".join(missing)),
         "meta/checkpoint_keys": np.array("\n".join(checkpoint_keys)),
         # Whether each BERT holds the checkpoint's weights after the public load.
         "meta/bert_l_is_checkpoint": np.array(bert_l_loaded),
         "meta/bert_s_is_checkpoint": np.array(bert_s_loaded),
         "meta/bert_s_is_pretraining_checkpoint": np.array(bert_s_from_pretraining),
         **{f"size/{k}": np.array(v) for k, v in SIZES.items()},
         "optim/lr": np.array(LR), "optim/mi_lr": np.array(MI_LR),
         "optim/steps": np.array(STEPS)}
  _state("w0/model", model, out)
  for pair, est in estimators.items():
    _state(f"w0/club_{pair}", est, out)

  rng = np.random.default_rng(0)
  s = SIZES
  batches = []
  for step in range(STEPS):
    labeled, unlabeled = _batch(rng, s["batch"]), _batch(rng, s["unlabeled"])
    labels = rng.uniform(-3, 3, s["batch"]).astype(np.float32)
    batches.append((labeled, unlabeled, labels))
    for k, v in {**{f"l/{k}": v for k, v in labeled.items()},
                 **{f"u/{k}": v for k, v in unlabeled.items()}, "labels": labels}.items():
      out[f"batch{step}/{k}"] = v

  _forward(model, estimators, modules, batches[0], out)
  log, grads = [], []
  _record_losses(script, estimators, log)
  step_fn = optimizer.step

  def recording_step(*a, **k):
    grads.append({n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()
                  if p.grad is not None})
    return step_fn(*a, **k)
  optimizer.step = recording_step
  for step, (labeled, unlabeled, labels) in enumerate(batches):
    del log[:]
    out[f"step{step}/lr"] = np.array(scheduler.get_last_lr()[0])
    script.train_epoch(model, *ests, [_torch_batches(labeled, unlabeled, labels)],
                       optimizer, mi_optimizer, scheduler, step,
                       viz=types.SimpleNamespace(line=lambda *a, **k: None))
    kinds = [k for k, _ in log]
    assert kinds[:4] == ["mse", "ce", "mse", "mse"], kinds
    for name, (_, value) in zip(("task", "recon/text", "recon/audio", "recon/vision"), log):
      out[f"step{step}/loss/{name}"] = np.array(value)
    for kind, value in log[4:]:
      out[f"step{step}/loss/{kind}"] = np.array(value)
    for name, g in grads[-1].items():
      out[f"step{step}/grad/{name}"] = g
    _state(f"w{step + 1}/model", model, out)
    for pair, est in estimators.items():
      _state(f"w{step + 1}/club_{pair}", est, out)
  np.savez_compressed(flags.out, **out)
  print(f"wrote {flags.out} ({os.path.getsize(flags.out) / 1024:.0f} KiB, {len(out)} arrays) "
        f"from MIRD {commit[:7]}; after loading a BERT checkpoint through the public class, "
        f"the language BERT holds its weights: {bert_l_loaded}, the WSA-BERT: {bert_s_loaded}")


def _forward(model, estimators, modules, batch, out):
  """Every latent and reconstruction of one forward (no dropout), each CLUB network's
  mu/logvar, log-likelihood and bound on those latents, and WSA's and WA's outputs."""
  import torch  # pylint: disable=g-import-not-at-top
  labeled, unlabeled, _ = batch
  joint = {k: torch.from_numpy(np.concatenate([labeled[k], unlabeled[k]])) for k in labeled}
  model.eval()
  with torch.no_grad():
    names = ("z_l", "z_a", "z_v", "z_s", "recon_text", "recon_audio", "recon_vision", "pred")
    values = model(joint["text_ids"], joint["vision"], joint["audio"],
                   token_type_ids=joint["text_type"], attention_mask=joint["text_mask"])
    for name, value in zip(names, values):
      out[f"forward/{name}"] = value.numpy()
    z = {n[2:]: v for n, v in zip(names[:4], values[:4])}
    for pair, est in estimators.items():
      x, y = pair.split("_")
      mu, logvar = est.get_mu_logvar(z[x])
      out[f"club/{pair}/mu"], out[f"club/{pair}/logvar"] = mu.numpy(), logvar.numpy()
      out[f"club/{pair}/loglik"] = est.loglikeli(z[x], z[y]).numpy()
      out[f"club/{pair}/bound"] = est(z[x], z[y]).numpy()
    bert = model.mult_encoder.model
    e = bert.embeddings(input_ids=joint["text_ids"], token_type_ids=joint["text_type"])
    out["wsa/embeddings"] = e.numpy()
    out["wsa/out"] = bert.WSA(e, joint["vision"], joint["audio"]).numpy()
    torch.manual_seed(2)
    wa = modules.WA(SIZES["hidden"], 1.0, 0.0).eval()
    for p in wa.parameters():
      p.add_(torch.randn_like(p) * 0.3)
    _state("wa", wa, out)
    out["wa/out"] = wa(e, joint["vision"], joint["audio"]).numpy()


if __name__ == "__main__":
  main()
