"""The public code's fixtures (tests/data/parity/, written by the make_*.py beside them) as
our configs, params and batches, for the parity tests. No torch: numbers only.

Every check reports its worst element, so a failure says where and by how much.
"""

import functools
import pathlib

import flax
import numpy as np

DATA = pathlib.Path(__file__).parent / "data" / "parity"
MODEL_KEYS = ("text_ids", "text_mask", "text_type", "audio", "vision")


@functools.lru_cache(maxsize=4)
def fixture(name: str) -> dict:
  with np.load(DATA / f"{name}.npz", allow_pickle=False) as f:
    return dict(f)


def sizes(d) -> dict[str, int]:
  return {k[5:]: int(d[k]) for k in d if k.startswith("size/")}


def _under(d, prefix: str) -> dict[str, np.ndarray]:
  """The fixture's arrays whose names start with `prefix`, by the rest of their names."""
  return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


def state(d, prefix: str) -> dict[str, np.ndarray]:
  """The public state_dict stored under `prefix` ("w0", "step0/grad", ...), estimators as
  `club_<pair>.<name>` (public_weights.mird's layout)."""
  out = _under(d, f"{prefix}/model/")
  out.update({k[len(prefix) + 1:].replace("/", ".", 1): v for k, v in d.items()
              if k.startswith(f"{prefix}/club_")})
  return out


def grads(d, step: int) -> dict[str, np.ndarray]:
  """The public main-loss gradient at `step`, by state_dict name."""
  return _under(d, f"step{step}/grad/")


def template(model):
  """Our param shapes (no compile): what public_weights fills."""
  import jax  # pylint: disable=g-import-not-at-top
  from mird_jax.models import factory  # pylint: disable=g-import-not-at-top
  return jax.eval_shape(lambda: factory.init_params(model, jax.random.key(0)))


def _preset(d, name: str):
  """configs/public.py's preset `name` with the fixture's BERT and data sizes, BERT's
  dropouts off (each family's own sizes and dropouts are set by its caller)."""
  from configs import public  # pylint: disable=g-import-not-at-top
  s, config = sizes(d), public.get_config(name)
  b = config.bert
  b.pretrained, b.hidden_dropout, b.attention_dropout = False, 0.0, 0.0
  b.random.update(vocab_size=s["vocab"], hidden_size=s["hidden"], num_layers=s["layers"],
                  num_heads=s["heads"], intermediate_size=s["intermediate"], max_position=16)
  config.data.update({k: s[k] for k in ("text_len", "audio_len", "audio_dim", "vision_len",
                                        "vision_dim")})
  config.data.batch_size = s["batch"]
  return s, config


def mird_config(d):
  """configs/public.py's MIRD preset at the fixture's sizes, every dropout off."""
  s, config = _preset(d, "mird")
  m = config.model
  m.d_z = m.lstm_hidden = m.regressor_hidden = s["d_z"]
  m.latent_dropout = m.fusion_dropout = m.regressor_dropout = 0.0
  config.club.hidden = s["club_arg"] // 2  # The public code halves the width it is given.
  config.club.lr = float(d["optim/mi_lr"])
  config.optim.bert_lr = config.optim.main_lr = float(d["optim/lr"])
  return config


def _model_batch(d, prefix: str, labels: str | None) -> dict[str, np.ndarray]:
  """Our batch from the fixture's inputs under `prefix`: int32 token fields, every
  sequence full length, and the labels stored at `labels` (None: unlabelled rows)."""
  out = {k: d[f"{prefix}{k}"] for k in MODEL_KEYS}
  for k in ("text_ids", "text_mask", "text_type"):
    out[k] = out[k].astype(np.int32)
  n = out["text_ids"].shape[0]
  out["audio_len"] = np.full(n, out["audio"].shape[1], np.int32)
  out["vision_len"] = np.full(n, out["vision"].shape[1], np.int32)
  if labels is not None:
    out["label"] = d[labels]
  return out


def batch(d, step: int, part: str) -> dict[str, np.ndarray]:
  """Batch `step`'s labelled (`l`, with its labels) or unlabelled (`u`) rows, full length."""
  return _model_batch(d, f"batch{step}/{part}/", f"batch{step}/labels" if part == "l" else None)


def joint(d, step: int) -> dict[str, np.ndarray]:
  lab, unl = batch(d, step, "l"), batch(d, step, "u")
  return {k: np.concatenate([lab[k], unl[k]]) for k in unl}


def flat(tree) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in
          flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep="/").items()}


def worst(ours, theirs) -> tuple[float, str]:
  """(largest |ours - theirs|, where): over two arrays, or two {name: array} dicts."""
  if not isinstance(ours, dict):
    ours, theirs = {"": ours}, {"": theirs}
  assert ours.keys() == theirs.keys(), sorted(set(ours) ^ set(theirs))
  best = (-1.0, "")
  for k in ours:
    a, b = np.asarray(ours[k], np.float64), np.asarray(theirs[k], np.float64)
    assert a.shape == b.shape, f"{k}: shape {a.shape} vs {b.shape}"
    err = np.abs(a - b)
    i = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    if err.size and err[i] > best[0]:
      best = (float(err[i]), f"{k}{[int(j) for j in i]}: ours {a[i]:.7g}, public {b[i]:.7g}")
  return best


def assert_close(ours, theirs, atol: float, what: str) -> float:
  err, where = worst(ours, theirs)
  assert err <= atol, f"{what}: worst |difference| {err:.3g} > {atol:g} at {where}"
  return err


def mib_state(d, variant: str, what: str = "w0") -> dict[str, np.ndarray]:
  """The public MIB state of `variant` (`w0`, `w1`) or its gradient (`grad`), by name."""
  return _under(d, f"{variant}/{what}/")


def mib_config(d, variant: str):
  """configs/public.py's MIB preset of `variant` at the fixture's sizes, dropout off."""
  s, config = _preset(d, f"mib_{variant}")
  m = config.model.mib
  m.width = m.bottleneck = s["width"]
  m.hidden, m.heads, m.layers = s["ib_hidden"], s["mib_heads"], 1
  m.attn_dropout = m.relu_dropout = m.res_dropout = m.embed_dropout = m.tensor_dropout = 0.0
  config.optim.bert_lr, config.optim.main_lr = float(d["optim/lr_bert"]), float(
      d["optim/lr_main"])
  return config


def mib_batch(d) -> dict[str, np.ndarray]:
  return _model_batch(d, "batch/", "batch/labels")
