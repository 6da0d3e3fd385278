"""The MIRD model: four latents, reconstruction decoders, the regressor and six CLUB networks.

  z_l = Dense(Dropout(pool(BERT_l(text))))                language-specific
  z_a, z_v = Dense(LSTM(frames)[last valid])              audio-/vision-specific
                                        (or MIB's Transformer: model.av_encoder, av_encoder.py)
  z_s = Dense(Dropout(pool(BERT_s(WSA(embed(text), audio, vision)))))   modality-agnostic
  prediction = Dense(1)(Dropout(ReLU(Dense([z_s; z_l; z_a; z_v]))))
  reconstructions: LSTM decoders from [z_s; z_m] rebuild each modality.
`__call__` returns (prediction [B], aux) with aux the latents, reconstructions and WSA
weights that the losses read; `club_stats` gives each CLUB pair's (mu, logvar).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from data_pipelines import example
from mird_jax.models import av_encoder
from mird_jax.models import bert
from mird_jax.models import club
from mird_jax.models import initializers
from mird_jax.models import lstm
from mird_jax.models import wsa

@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """The static, hashable part of the config the model is built from (no defaults here:
  every value comes from the config, through models/factory.py)."""
  bert: bert.BertConfig
  dims: example.Dims  # The padded input shapes.
  d_z: int
  lstm_hidden: int
  av_encoder: av_encoder.EncoderSpec  # The audio/vision encoders (av_encoder.py).
  regressor_hidden: int
  fusion: str
  beta_shift: float
  constraint: str
  share_bert: bool
  text_recon_target: str
  latent_dropout: float
  fusion_dropout: float
  regressor_dropout: float
  club_hidden: int
  # The six CLUB networks exist: constraint mim (they are its penalty), or club.monitor
  # (fitted as a measurement only, for the MI curves of the none/orthogonal ablations).
  estimators: bool
  recon: tuple[bool, bool, bool]  # text, audio, vision: decoders built and run.
  init_scheme: str
  lstm_cell: str  # flax | torch: one or two biases per gate (initializers.lstm_cell).
  dtype: str

  sample_at_eval = False  # The family protocol (factory.py): MIRD evaluates deterministically.


def loss_terms(spec: ModelSpec) -> list[str]:
  """The loss terms of MIRD's objective under its constraint."""
  terms = ["task", "recon/text", "recon/audio", "recon/vision"]
  if spec.constraint == "mim":
    terms += [f"mi/{x}_{y}" for x, y in club.PAIRS]
  elif spec.constraint == "orthogonal":
    terms += [f"orthogonal/s_{x}" for x in "lav"]
  return terms


class MIRD(nn.Module):
  spec: ModelSpec
  LATENTS = ("z_s", "z_l", "z_a", "z_v")  # What the diagnostics and the CLUB pairs read.
  loss_terms = staticmethod(loss_terms)

  def setup(self):
    s, dtype = self.spec, jnp.dtype(self.spec.dtype)
    dims, init, width = s.dims, s.init_scheme, s.bert.hidden_size
    self.bert_l = bert.Bert(cfg=s.bert, dtype=dtype)
    # A shared BERT is one module under one name, so it has one set of params.
    self.bert_s = self.bert_l if s.share_bert else bert.Bert(cfg=s.bert, dtype=dtype)
    self.fusion = wsa.WordAlignedFusion(hidden=width, fusion=s.fusion,
                                        beta_shift=s.beta_shift, dropout=s.fusion_dropout,
                                        dtype=dtype)
    dense = lambda features, fan_in: initializers.dense(features, fan_in, init, dtype)
    self.proj_l = dense(s.d_z, width)
    self.proj_s = dense(s.d_z, width)
    self.latent_dropout = nn.Dropout(rate=s.latent_dropout)
    encoder = lambda: av_encoder.make(s.av_encoder, s.d_z, dtype, own="lstm")
    self.enc_audio, self.enc_vision = encoder(), encoder()
    decoder = lambda out: lstm.LSTMDecoder(out=out, init_scheme=init, cell=s.lstm_cell,
                                           dtype=dtype)
    text_out = s.bert.vocab_size if s.text_recon_target == "vocab_logits" else width
    self.dec_text = decoder(text_out)
    self.dec_audio = decoder(dims.audio_dim)
    self.dec_vision = decoder(dims.vision_dim)
    self.reg_hidden = dense(s.regressor_hidden, 4 * s.d_z)
    self.reg_dropout = nn.Dropout(rate=s.regressor_dropout)
    self.reg_out = dense(1, s.regressor_hidden)
    # Flax names dict entries "<attribute>_<key>": club_l_a, ..., club_s_v.
    self.club = ({f"{x}_{y}": club.Club(hidden=s.club_hidden, d_y=s.d_z, init_scheme=init)
                  for x, y in club.PAIRS} if s.estimators else {})

  def latents(self, batch, deterministic: bool):
    """z_s, z_l, z_a, z_v [B, d_z] and the WSA attention weights."""
    ids, mask, types = batch["text_ids"], batch["text_mask"], batch["text_type"]
    drop = lambda t: self.latent_dropout(t, deterministic=deterministic)
    _, pooled_l = self.bert_l(ids, mask, types, deterministic)
    e_BxTxH = self.bert_s.embed(ids, types, deterministic)
    fused, weights = self.fusion(e_BxTxH, batch["audio"], batch["audio_len"], batch["vision"],
                                 batch["vision_len"], deterministic)
    pooled_s = self.bert_s.pool(self.bert_s.encode(fused, mask, deterministic))
    z = {"z_s": self.proj_s(drop(pooled_s)), "z_l": self.proj_l(drop(pooled_l)),
         "z_a": self.enc_audio(batch["audio"], batch["audio_len"], deterministic),
         "z_v": self.enc_vision(batch["vision"], batch["vision_len"], deterministic)}
    return {k: v.astype(jnp.float32) for k, v in z.items()}, weights

  def __call__(self, batch, deterministic: bool = True, reconstruct: bool = True):
    aux, weights = self.latents(batch, deterministic)
    aux["wsa_audio"], aux["wsa_vision"] = weights["audio"], weights["vision"]
    z_all = jnp.concatenate([aux["z_s"], aux["z_l"], aux["z_a"], aux["z_v"]], -1)
    hidden = self.reg_dropout(nn.relu(self.reg_hidden(z_all)), deterministic=deterministic)
    prediction_B = self.reg_out(hidden)[:, 0].astype(jnp.float32)
    if reconstruct:
      recon_text, recon_audio, recon_vision = self.spec.recon
      shared = lambda zm: jnp.concatenate([aux["z_s"], aux[zm]], -1)
      # Each decoder rebuilds the batch's own length (a length bucket's, or the padded one).
      steps = lambda key: batch[key].shape[1]
      if recon_text:
        aux["recon_text"] = self.dec_text(shared("z_l"), steps("text_ids")).astype(jnp.float32)
        if self.spec.text_recon_target == "bert_embeddings":
          table = self.bert_l.word_embedding_table()
          aux["text_target"] = jax.lax.stop_gradient(table[batch["text_ids"]])
      if recon_audio:
        aux["recon_audio"] = self.dec_audio(shared("z_a"), steps("audio")).astype(jnp.float32)
      if recon_vision:
        aux["recon_vision"] = self.dec_vision(shared("z_v"), steps("vision")).astype(
            jnp.float32)
    return prediction_B, aux

  def club_stats(self, aux):
    """{(x, y): (mu [B, d_z], logvar [B, d_z])} of q(z_y | z_x) for the six pairs."""
    return {(x, y): self.club[f"{x}_{y}"](aux[f"z_{x}"]) for x, y in club.PAIRS
            if self.spec.estimators}

  def init_everything(self, batch):
    """Touches every submodule (decoders and estimators included) for `init`."""
    prediction, aux = self(batch, deterministic=True, reconstruct=True)
    return prediction, aux, self.club_stats(aux)
