"""Word-wise sparse alignment (WSA): fuses audio and vision frames into BERT's token embeddings.

For every token, attention over the frames of each modality (sparsemax for `wsa`, softmax
for `wa`), padded frames masked out so they get exactly zero weight; gated projections of
the attended frames are added to the token embedding with the norm-ratio scale
alpha = min(|e| / |h| * beta_shift, 1), then LayerNorm and dropout (docs/design.md).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


_INIT = nn.initializers.normal(0.02)


_BISECTIONS = 30  # Halvings of tau's interval of width 1: past float32's resolution.
_SORT_MAX = 64  # Rows this long or shorter are sorted: cheaper than 30 bisection passes.


def _lower_bound_by_sort(z, mask):
  """A value below which no support entry lies: tau of the sorted algorithm."""
  z_sorted = -jnp.sort(-jnp.where(mask, z, -jnp.inf), axis=-1)
  k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype).reshape((1,) * (z.ndim - 1) + (-1,))
  cumsum = jnp.cumsum(z_sorted, axis=-1)
  k_z = jnp.sum((1 + k * z_sorted) > cumsum, axis=-1, keepdims=True)
  tau = (jnp.take_along_axis(cumsum, jnp.maximum(k_z, 1) - 1, axis=-1) - 1) / jnp.maximum(
      k_z, 1)
  return jnp.where(k_z > 0, tau, jnp.inf)  # A row with no valid entry has no support.


def _lower_bound_by_bisection(z, mask):
  """The same bound found by halving [max z - 1, max z), where sum(max(z - t, 0)) = 1
  crosses 1, without sorting."""
  hi = jnp.max(jnp.where(mask, z, -jnp.inf), axis=-1, keepdims=True)
  hi = jnp.where(jnp.isfinite(hi), hi, 0.0)  # A row with no valid entry gets all zeros.

  def halve(_, bounds):
    lo, hi = bounds
    mid = (lo + hi) / 2
    over = jnp.sum(jnp.where(mask, jnp.maximum(z - mid, 0.0), 0.0), axis=-1,
                   keepdims=True) > 1.0
    return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

  return jax.lax.fori_loop(0, _BISECTIONS, halve, (hi - 1.0, hi))[0]


def sparsemax(z, mask=None, axis: int = -1):
  """Euclidean projection of z onto the simplex (Martins & Astudillo, 2016).

  Entries where `mask` is False get exactly 0 and do not affect the others.
  The threshold tau solves sum(max(z - tau, 0)) = 1; the support is {z > tau}. Long rows
  (MIRD's 400 audio frames) find the support by bisection: sorting every token's frames
  was WSA's costliest op on a CPU; short rows sort, which then costs less than the
  bisection's passes. Either way tau is then computed exactly from the support,
  (sum of its z - 1) / its size, and gradients flow through that formula only, which
  gives sparsemax's Jacobian.
  """
  z = jnp.moveaxis(z, axis, -1)
  mask = jnp.ones(z.shape, bool) if mask is None else jnp.moveaxis(mask, axis, -1)
  fixed = jax.lax.stop_gradient(z)
  find = _lower_bound_by_sort if z.shape[-1] <= _SORT_MAX else _lower_bound_by_bisection
  support = mask & (fixed > find(fixed, mask))
  k_z = jnp.maximum(jnp.sum(support, axis=-1, keepdims=True), 1).astype(z.dtype)
  tau = (jnp.sum(jnp.where(support, z, 0.0), axis=-1, keepdims=True) - 1) / k_z
  p = jnp.where(mask, jnp.maximum(z - tau, 0.0), 0.0)
  return jnp.moveaxis(p, -1, axis)


def safe_norm(x, axis: int = -1):
  """Euclidean norm over `axis` (kept) whose gradient is 0, not NaN, at x = 0.

  jnp.linalg.norm's gradient x / |x| is 0/0 there, and the WSA shift h is exactly 0 for a
  token whose attended audio and vision are all-zero frames.
  """
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  nonzero = sq > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def masked_softmax(z, mask, axis: int = -1):
  z = jnp.where(mask, z, jnp.finfo(z.dtype).min)
  return jnp.where(mask, jax.nn.softmax(z, axis=axis), 0.0)


class WordAlignedFusion(nn.Module):
  """WSA (sparse) or WA (soft) fusion of audio and vision into token embeddings."""
  hidden: int
  fusion: str = "wsa"  # wsa | wa
  beta_shift: float = 1.0
  dropout: float = 0.5
  dtype: jnp.dtype = jnp.float32

  def _align(self, e_BxTxH, x_BxSxD, len_B, name):
    """Per-token attention over one modality's valid frames -> attended frames [B, T, D]."""
    keys_BxSxH = nn.Dense(self.hidden, kernel_init=_INIT, dtype=self.dtype,
                          name=f"{name}_key")(x_BxSxD)
    scores_BxTxS = jnp.einsum("bth,bsh->bts", e_BxTxH, keys_BxSxH).astype(jnp.float32)
    valid_BxS = jnp.arange(x_BxSxD.shape[1])[None, :] < len_B[:, None]
    mask = jnp.broadcast_to(valid_BxS[:, None, :], scores_BxTxS.shape)
    weights = sparsemax(scores_BxTxS, mask) if self.fusion == "wsa" else masked_softmax(
        scores_BxTxS, mask)
    return jnp.einsum("bts,bsd->btd", weights.astype(self.dtype), x_BxSxD), weights

  @nn.compact
  def __call__(self, e_BxTxH, audio_BxSxD, audio_len_B, vision_BxSxD, vision_len_B,
               deterministic: bool):
    if self.fusion not in ("wsa", "wa"):
      raise ValueError(f"unknown fusion {self.fusion!r}; expected wsa or wa")
    h_BxTxH = jnp.zeros_like(e_BxTxH)
    weights = {}
    for name, x, length in (("audio", audio_BxSxD, audio_len_B),
                            ("vision", vision_BxSxD, vision_len_B)):
      attended, weights[name] = self._align(e_BxTxH, x, length, name)
      gate = nn.relu(nn.Dense(self.hidden, kernel_init=_INIT, dtype=self.dtype,
                              name=f"{name}_gate")(jnp.concatenate([attended, e_BxTxH], -1)))
      h_BxTxH += gate * nn.Dense(self.hidden, kernel_init=_INIT, dtype=self.dtype,
                                 name=f"{name}_proj")(attended)
    e_norm = safe_norm(e_BxTxH)
    h_norm = safe_norm(h_BxTxH)
    h_norm = jnp.where(h_norm == 0, 1.0, h_norm)  # As in MAG: a zero shift is left alone.
    alpha = jnp.minimum(e_norm / (h_norm + 1e-6) * self.beta_shift, 1.0)
    # torch.nn.LayerNorm's epsilon (the public WSA module's), not Flax's 1e-6.
    out = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="LayerNorm")(
        e_BxTxH + alpha * h_BxTxH)
    return nn.Dropout(self.dropout)(out, deterministic=deterministic), weights
