"""The canonical example every reader produces and every model consumes (docs/design.md).

A split is a dict of numpy arrays with a leading example axis N (fixed padded shapes):
  text_ids, text_mask, text_type  int32   [N, T_t]
  audio                           float32 [N, T_a, d_a]   zero back-padding
  audio_len                       int32   [N]             valid frames, in [1, T_a]
  vision                          float32 [N, T_v, d_v]
  vision_len                      int32   [N]
  label                           float32 [N]             0 for unlabelled examples
  id                              str     [N]
"""

import dataclasses

import numpy as np

MODEL_KEYS = ("text_ids", "text_mask", "text_type", "audio", "audio_len", "vision",
              "vision_len")  # What a model reads.
NUMERIC_KEYS = MODEL_KEYS + ("label",)
KEYS = NUMERIC_KEYS + ("id",)


@dataclasses.dataclass(frozen=True)
class Dims:
  """Padded lengths and feature dims. None means "whatever the file has" (verify)."""
  text_len: int | None = None
  audio_len: int | None = None
  audio_dim: int | None = None
  vision_len: int | None = None
  vision_dim: int | None = None

  @classmethod
  def from_config(cls, data_config) -> "Dims":
    return cls(data_config.text_len, data_config.audio_len, data_config.audio_dim,
               data_config.vision_len, data_config.vision_dim)

  def resolve(self, split: dict[str, np.ndarray]) -> "Dims":
    """Fills None fields from a canonical split's arrays."""
    return Dims(split["text_ids"].shape[1], *split["audio"].shape[1:],
                *split["vision"].shape[1:])

  def shapes(self) -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-example shape and dtype of every numeric field."""
    t = (self.text_len,)
    return {
        "text_ids": (t, np.int32), "text_mask": (t, np.int32), "text_type": (t, np.int32),
        "audio": ((self.audio_len, self.audio_dim), np.float32), "audio_len": ((), np.int32),
        "vision": ((self.vision_len, self.vision_dim), np.float32),
        "vision_len": ((), np.int32), "label": ((), np.float32),
    }


def num_examples(split: dict[str, np.ndarray]) -> int:
  return len(split["id"])


def positional_id(split: str, index: int) -> str:
  """The id given to examples of formats that carry none (the MIRD layout)."""
  return f"{split}/{index:06d}"
