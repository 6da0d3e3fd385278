"""The audio/vision encoders, one option for both families (`model.av_encoder`), so that
an encoder can be held fixed while the objective changes (MIRD's CLUB disentanglement or
MIB's bottlenecks) and the other way round:

  lstm         MIRD's: the last valid state of an LSTM (`model.lstm_hidden` wide, with
               `model.init_scheme` and `model.lstm_cell`), then a Dense to the output size.
  transformer  MIB's: Conv1d, the MulT-style Transformer (`model.mib.width`, `heads`,
               `layers`, its dropouts, `init`, `layer_norm_eps`) read out by
               `model.mib.readout` (the masked mean, or the public code's last position),
               then a Dense to the output size when that is not `model.mib.width`.

Each family keeps its own output size (MIRD's d_z, MIB's width) and its module names
(`enc_audio`, `enc_vision`), so a family's default encoder has the parameters it always had.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from mird_jax.models import lstm
from mird_jax.models import transformer

KINDS = ("lstm", "transformer")


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
  """The encoder settings of the config (models/factory.py fills them; no defaults here)."""
  kind: str
  lstm_hidden: int
  lstm_init: str  # flax | pytorch (initializers.py).
  lstm_cell: str  # flax | torch.
  width: int
  heads: int
  layers: int
  attn_dropout: float
  relu_dropout: float
  res_dropout: float
  embed_dropout: float
  readout: str
  init: str  # flax | public (transformer.py).
  layer_norm_eps: float


class TransformerReadout(nn.Module):
  """TransformerEncoder, then (when `out` differs from its width) a Dense to `out`."""
  spec: EncoderSpec
  out: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxTxD, len_B, deterministic: bool = True):
    s = self.spec
    h_BxW = transformer.TransformerEncoder(
        width=s.width, heads=s.heads, layers=s.layers, attn_dropout=s.attn_dropout,
        relu_dropout=s.relu_dropout, res_dropout=s.res_dropout, embed_dropout=s.embed_dropout,
        readout=s.readout, initializer=s.init, layer_norm_eps=s.layer_norm_eps,
        dtype=self.dtype, name="transformer")(x_BxTxD, len_B, deterministic)
    return transformer.dense(self.out, s.init, self.dtype, "proj_out")(h_BxW)


def make(spec: EncoderSpec, out: int, dtype, own: str):
  """One audio or vision encoder, [B, T, D] frames and [B] lengths -> [B, out]. `own` is
  the family's own kind: that encoder is built exactly as the family always built it."""
  if spec.kind not in KINDS:
    raise ValueError(f"model.av_encoder={spec.kind!r}; expected one of {KINDS}")
  if spec.kind == "lstm":
    return lstm.LSTMEncoder(hidden=spec.lstm_hidden, d_z=out, init_scheme=spec.lstm_init,
                            cell=spec.lstm_cell, dtype=dtype)
  if own == "transformer" and out == spec.width:
    return transformer.TransformerEncoder(
        width=spec.width, heads=spec.heads, layers=spec.layers,
        attn_dropout=spec.attn_dropout, relu_dropout=spec.relu_dropout,
        res_dropout=spec.res_dropout, embed_dropout=spec.embed_dropout, readout=spec.readout,
        initializer=spec.init, layer_norm_eps=spec.layer_norm_eps, dtype=dtype)
  return TransformerReadout(spec=spec, out=out, dtype=dtype)
