"""The multimodal information bottleneck (MIB; Mai et al. 2022): one module, three variants.

  x_l = masked mean (or last step) of Conv1d(BERT(text))   (B, width)
  x_a, x_v = TransformerEncoder(Conv1d(frames))             (B, width)  transformer.py
             (or MIRD's LSTM last state: model.av_encoder, av_encoder.py)
  bottleneck(x) = (z, prediction): h = ReLU(Dense(hidden)(x)), mu = Dense(d)(h),
      sigma = softplus(Dense(d)(h) - shift), z = mu + sigma * eps, prediction = Dense(1)(z)
  early (E-MIB):    prediction, z_f = bottleneck_f(fusion(x_l, x_a, x_v))
  late (L-MIB):     z_m = bottleneck_m(x_m); prediction = Dense(1)(fusion(z_l, z_a, z_v))
  complete (C-MIB): z_m = bottleneck_m(x_m); prediction, z_f = bottleneck_f(fusion(z_l, z_a, z_v))
Each bottleneck's KL to N(0, I) and (for the unimodal ones) its own prediction's task loss
enter the loss (training/objective.py). z is sampled in training; evaluation uses the
posterior mean (z = mu) unless `sample_at_eval`, the public code's stochastic evaluation.

`__call__` returns (prediction [B], aux): aux holds z_l, z_a, z_v, z_f (the unimodal
representations and the fused one, the latents the diagnostics read) and, per bottleneck
m, pred_m, mu_m and log_sigma_m.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from data_pipelines import example
from mird_jax.models import av_encoder
from mird_jax.models import bert
from mird_jax.models import transformer


def unimodal_bottlenecks(variant: str) -> bool:
  return variant in ("late", "complete")


def fused_bottleneck(variant: str) -> bool:
  return variant in ("early", "complete")


@dataclasses.dataclass(frozen=True)
class MibSpec:
  """The static, hashable part of the config the MIB model is built from (no defaults;
  models/factory.py fills it from the config)."""
  bert: bert.BertConfig
  dims: example.Dims  # The padded input shapes.
  variant: str
  fusion: str
  width: int
  bottleneck: int
  hidden: int
  scale_shift: float
  heads: int
  layers: int
  attn_dropout: float
  relu_dropout: float
  res_dropout: float
  embed_dropout: float
  av_encoder: av_encoder.EncoderSpec  # The audio/vision encoders (av_encoder.py).
  sample_at_eval: bool
  readout: str  # mean | last (transformer.pool).
  init: str  # flax | public (transformer.py: the public code's init_weights()).
  layer_norm_eps: float
  tensor_head: str  # fusion=tensor: ours (ReLU, ReLU, linear) | public (the variant's).
  tensor_dropout: float  # The public tensor head's dropout on the outer product.
  dtype: str

  # The family protocol (factory.py): MIB has no CLUB networks and no MI constraint.
  estimators = False
  constraint = "none"


def loss_terms(spec: MibSpec) -> list[str]:
  """The loss terms of a MIB variant: the fused prediction's task loss, and per bottleneck
  its KL (and, for the unimodal ones, its own prediction's task loss)."""
  terms = ["task"]
  if unimodal_bottlenecks(spec.variant):
    terms += [f"task/{m}" for m in "lav"] + [f"kl/{m}" for m in "lav"]
  if fused_bottleneck(spec.variant):
    terms.append("kl/f")
  return terms


def log_softplus(u):
  """log(softplus(u)), finite (= u) where softplus underflows to 0."""
  safe = jnp.maximum(u, -30.0)
  return jnp.where(u < -30.0, u, jnp.log(jax.nn.softplus(safe)))


class Bottleneck(nn.Module):
  """x -> (z, prediction [B], mu, log_sigma); z is sampled iff `sample`."""
  hidden: int
  width: int
  scale_shift: float
  initializer: str = "flax"  # flax | public (the module docstring).
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxD, sample: bool):
    dense = lambda n, name: transformer.dense(n, self.initializer, self.dtype, name)
    h = nn.relu(dense(self.hidden, "hidden")(x_BxD))
    mu = dense(self.width, "mu")(h).astype(jnp.float32)
    u = dense(self.width, "scale")(h).astype(jnp.float32)
    log_sigma = log_softplus(u - self.scale_shift)
    z = mu
    if sample:
      z = mu + jnp.exp(log_sigma) * jax.random.normal(self.make_rng("sample"), mu.shape)
    prediction_B = dense(1, "decoder")(z)[:, 0]
    return z, prediction_B.astype(jnp.float32), mu, log_sigma


# The public tensor fusion's three activations after its Linear layers, per variant file:
# C-MIB's (cmib.py) is tanh three times, E-MIB's and L-MIB's none, tanh, ReLU.
_PUBLIC_TENSOR = {"complete": (jnp.tanh, jnp.tanh, jnp.tanh),
                  "early": (lambda h: h, jnp.tanh, nn.relu),
                  "late": (lambda h: h, jnp.tanh, nn.relu)}


class Fusion(nn.Module):
  """Three [B, D] vectors (language, audio, vision) -> [B, width] (concat, tensor) or [B, D]
  (sum, product)."""
  kind: str
  width: int
  initializer: str = "flax"  # flax | public (the module docstring).
  tensor_head: str = "ours"
  variant: str = "complete"  # Which public tensor head (tensor_head=public).
  tensor_dropout: float = 0.5  # The public tensor head's dropout on the outer product.
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, l, a, v, deterministic: bool = True):
    dense = lambda n, name: transformer.dense(n, self.initializer, self.dtype, name)
    if self.kind == "concat":
      return nn.relu(dense(self.width, "concat")(jnp.concatenate([l, a, v], -1)))
    if self.kind == "sum":
      return l + a + v
    if self.kind == "product":
      return l * a * v
    one = jnp.ones(l.shape[:1] + (1,), l.dtype)
    if self.tensor_head == "public":
      # The public TFN: a 1 prepended to each vector, the outer product in the order
      # audio x vision x language, dropout on it, then three Linear layers.
      a1, v1, l1 = (jnp.concatenate([one, x], -1) for x in (a, v, l))
      outer = jnp.einsum("bi,bj,bk->bijk", a1, v1, l1).reshape(l.shape[0], -1)
      h = nn.Dropout(self.tensor_dropout)(outer, deterministic=deterministic)
      for i, act in enumerate(_PUBLIC_TENSOR[self.variant]):
        h = act(dense(self.width, f"tensor_{i + 1}")(h))
      return h
    # TFN: the outer product of the three vectors, each with a 1 appended, so that the
    # unimodal and bimodal terms survive beside the trimodal ones.
    l1, a1, v1 = (jnp.concatenate([x, one], -1) for x in (l, a, v))
    outer = jnp.einsum("bi,bj,bk->bijk", l1, a1, v1).reshape(l.shape[0], -1)
    h = nn.relu(dense(self.width, "tensor_1")(outer))
    h = nn.relu(dense(self.width, "tensor_2")(h))
    return dense(self.width, "tensor_out")(h)


class MIB(nn.Module):
  spec: MibSpec
  # The latents the diagnostics and the disentanglement check read (z_f is the fused one).
  LATENTS = ("z_l", "z_a", "z_v", "z_f")
  loss_terms = staticmethod(loss_terms)

  def setup(self):
    s, dtype = self.spec, jnp.dtype(self.spec.dtype)
    self.bert = bert.Bert(cfg=s.bert, dtype=dtype)
    self.proj_l = transformer.Conv1d(width=s.width, initializer=s.init, dtype=dtype)
    enc = lambda: av_encoder.make(s.av_encoder, s.width, dtype, own="transformer")
    self.enc_audio, self.enc_vision = enc(), enc()
    head = lambda: Bottleneck(hidden=s.hidden, width=s.bottleneck,
                              scale_shift=s.scale_shift, initializer=s.init, dtype=dtype)
    if unimodal_bottlenecks(s.variant):
      self.ib_l, self.ib_a, self.ib_v = head(), head(), head()
    self.fusion = Fusion(kind=s.fusion, width=s.width, initializer=s.init,
                         tensor_head=s.tensor_head, variant=s.variant,
                         tensor_dropout=s.tensor_dropout, dtype=dtype)
    if fused_bottleneck(s.variant):
      self.ib_f = head()
    else:
      self.out = transformer.dense(1, s.init, dtype)

  def unimodal(self, batch, deterministic: bool):
    """x_l, x_a, x_v [B, width]: the text projection's readout and the audio/vision
    encoders' outputs."""
    mask = batch["text_mask"]
    # The hidden states only: MIB has no use for (and no parameters of) BERT's pooler.
    seq_BxTxH = self.bert.encode(self.bert.embed(batch["text_ids"], batch["text_type"],
                                                 deterministic), mask, deterministic)
    x_l = transformer.pool(self.proj_l(seq_BxTxH, mask), mask, self.spec.readout)
    x_a = self.enc_audio(batch["audio"], batch["audio_len"], deterministic)
    x_v = self.enc_vision(batch["vision"], batch["vision_len"], deterministic)
    return {"l": x_l, "a": x_a, "v": x_v}

  def __call__(self, batch, deterministic: bool = True, reconstruct: bool = True):
    del reconstruct  # MIB reconstructs nothing.
    return self.forward(batch, deterministic, not deterministic or self.spec.sample_at_eval)

  def forward(self, batch, deterministic: bool, sample: bool):
    s = self.spec
    x = self.unimodal(batch, deterministic)
    aux = {}
    if unimodal_bottlenecks(s.variant):
      for m, head in (("l", self.ib_l), ("a", self.ib_a), ("v", self.ib_v)):
        x[m], aux[f"pred_{m}"], aux[f"mu_{m}"], aux[f"log_sigma_{m}"] = head(x[m], sample)
    fused = self.fusion(x["l"], x["a"], x["v"], deterministic)
    if fused_bottleneck(s.variant):
      fused, prediction_B, aux["mu_f"], aux["log_sigma_f"] = self.ib_f(fused, sample)
    else:
      prediction_B = self.out(fused)[:, 0]
    aux.update({f"z_{m}": v for m, v in x.items()})
    aux["z_f"] = fused
    return prediction_B.astype(jnp.float32), {k: v.astype(jnp.float32) for k, v in aux.items()}

  def init_everything(self, batch):
    """Touches every submodule for `init` (no random draws: init gets only a params key)."""
    return self.forward(batch, deterministic=True, sample=False)
