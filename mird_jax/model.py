"""The MIRD model: four latents, reconstruction decoders, the regressor and six CLUB networks.

  z_l = Dense(Dropout(pool(BERT_l(text))))                language-specific
  z_a, z_v = Dense(LSTM(frames)[last valid])              audio-/vision-specific
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
import ml_collections

from mird_jax import bert
from mird_jax import club
from mird_jax import config_check
from mird_jax import initializers
from mird_jax import sequence
from mird_jax import wsa

@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """The static, hashable part of the config the model is built from (no defaults here:
  every value comes from the config)."""
  bert: bert.BertConfig
  text_len: int
  audio_len: int
  audio_dim: int
  vision_len: int
  vision_dim: int
  d_z: int
  lstm_hidden: int
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
  dtype: str

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict,
                  bert_cfg: bert.BertConfig) -> "ModelSpec":
    m, d, w = config.model, config.data, config.loss
    for key in ("model.constraint", "model.text_recon_target", "model.init_scheme"):
      config_check.require_choice(key, config_check.get(config, key))
    return cls(
        bert=bert_cfg, text_len=d.text_len, audio_len=d.audio_len, audio_dim=d.audio_dim,
        vision_len=d.vision_len, vision_dim=d.vision_dim, d_z=m.d_z,
        lstm_hidden=m.lstm_hidden, regressor_hidden=m.regressor_hidden, fusion=m.fusion,
        beta_shift=m.beta_shift, constraint=m.constraint, share_bert=m.share_bert,
        text_recon_target=m.text_recon_target, latent_dropout=m.latent_dropout,
        fusion_dropout=m.fusion_dropout, regressor_dropout=m.regressor_dropout,
        club_hidden=config.club.hidden,
        estimators=m.constraint == "mim" or config.club.monitor,
        recon=(w.w_recon_text > 0, w.w_recon_audio > 0, w.w_recon_vision > 0),
        init_scheme=m.init_scheme, dtype=m.dtype)


class MIRD(nn.Module):
  spec: ModelSpec
  LATENTS = ("z_s", "z_l", "z_a", "z_v")  # What the diagnostics and the CLUB pairs read.

  def setup(self):
    s, dtype = self.spec, jnp.dtype(self.spec.dtype)
    self.bert_l = bert.Bert(s.bert, dtype)
    # A shared BERT is one module under one name, so it has one set of params.
    self.bert_s = self.bert_l if s.share_bert else bert.Bert(s.bert, dtype)
    self.fusion = wsa.WordAlignedFusion(s.bert.hidden_size, s.fusion, s.beta_shift,
                                        s.fusion_dropout, dtype)
    init = s.init_scheme
    self.proj_l = initializers.dense(s.d_z, s.bert.hidden_size, init, dtype)
    self.proj_s = initializers.dense(s.d_z, s.bert.hidden_size, init, dtype)
    self.latent_dropout = nn.Dropout(s.latent_dropout)
    self.enc_audio = sequence.LSTMEncoder(s.lstm_hidden, s.d_z, init, dtype)
    self.enc_vision = sequence.LSTMEncoder(s.lstm_hidden, s.d_z, init, dtype)
    text_out = s.bert.vocab_size if s.text_recon_target == "vocab_logits" else s.bert.hidden_size
    self.dec_text = sequence.LSTMDecoder(text_out, s.text_len, init, dtype)
    self.dec_audio = sequence.LSTMDecoder(s.audio_dim, s.audio_len, init, dtype)
    self.dec_vision = sequence.LSTMDecoder(s.vision_dim, s.vision_len, init, dtype)
    self.reg_hidden = initializers.dense(s.regressor_hidden, 4 * s.d_z, init, dtype)
    self.reg_dropout = nn.Dropout(s.regressor_dropout)
    self.reg_out = initializers.dense(1, s.regressor_hidden, init, dtype)
    # Flax names dict entries "<attribute>_<key>": club_l_a, ..., club_s_v.
    self.club = ({f"{x}_{y}": club.Club(s.club_hidden, s.d_z, init) for x, y in club.PAIRS}
                 if s.estimators else {})

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
         "z_a": self.enc_audio(batch["audio"], batch["audio_len"]),
         "z_v": self.enc_vision(batch["vision"], batch["vision_len"])}
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
      if recon_text:
        aux["recon_text"] = self.dec_text(shared("z_l")).astype(jnp.float32)
        if self.spec.text_recon_target == "bert_embeddings":
          table = self.bert_l.word_embedding_table()
          aux["text_target"] = jax.lax.stop_gradient(table[batch["text_ids"]])
      if recon_audio:
        aux["recon_audio"] = self.dec_audio(shared("z_a")).astype(jnp.float32)
      if recon_vision:
        aux["recon_vision"] = self.dec_vision(shared("z_v")).astype(jnp.float32)
    return prediction_B, aux

  def club_stats(self, aux):
    """{(x, y): (mu [B, d_z], logvar [B, d_z])} of q(z_y | z_x) for the six pairs."""
    return {(x, y): self.club[f"{x}_{y}"](aux[f"z_{x}"]) for x, y in club.PAIRS
            if self.spec.estimators}

  def init_everything(self, batch):
    """Touches every submodule (decoders and estimators included) for `init`."""
    prediction, aux = self(batch, deterministic=True, reconstruct=True)
    return prediction, aux, self.club_stats(aux)
