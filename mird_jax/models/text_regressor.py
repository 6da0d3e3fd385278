"""The text-only regressor (model.name=text): the BERT branch alone, the row every table of
this field reports beside the multimodal models.

  prediction = Dense(1)(Dropout(BERT pooled output))

as a BERT fine-tuned for regression does (transformers' BertForSequenceClassification with
one label: the pooler's tanh([CLS]), dropout at BERT's hidden dropout, one linear layer).
Audio and vision are not read. aux holds z_l, the pooled output, the latent the diagnostics
read.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from data_pipelines import example
from mird_jax.models import bert


@dataclasses.dataclass(frozen=True)
class TextSpec:
  """The static, hashable part of the config the model is built from (factory.py)."""
  bert: bert.BertConfig
  dims: example.Dims  # The padded input shapes (audio and vision are not read).
  dropout: float  # Before the linear head.
  dtype: str

  # The family protocol (factory.py): no CLUB networks, no constraint, no sampling.
  estimators = False
  constraint = "none"
  sample_at_eval = False


def loss_terms(spec: TextSpec) -> list[str]:
  del spec
  return ["task"]


class TextRegressor(nn.Module):
  spec: TextSpec
  LATENTS = ("z_l",)
  loss_terms = staticmethod(loss_terms)

  def setup(self):
    dtype = jnp.dtype(self.spec.dtype)
    self.bert = bert.Bert(cfg=self.spec.bert, dtype=dtype)
    self.dropout = nn.Dropout(rate=self.spec.dropout)
    self.out = nn.Dense(1, dtype=dtype, kernel_init=nn.initializers.normal(0.02))

  def __call__(self, batch, deterministic: bool = True, reconstruct: bool = True):
    del reconstruct  # Nothing to reconstruct.
    _, pooled_BxH = self.bert(batch["text_ids"], batch["text_mask"], batch["text_type"],
                              deterministic)
    prediction_B = self.out(self.dropout(pooled_BxH, deterministic=deterministic))[:, 0]
    return prediction_B.astype(jnp.float32), {"z_l": pooled_BxH.astype(jnp.float32)}

  def init_everything(self, batch):
    return self(batch, deterministic=True)
