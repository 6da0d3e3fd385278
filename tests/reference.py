"""Reference implementations the tests compare the library against (never imported by it)."""

import jax.numpy as jnp


def club_upper_bound_pairwise(mu_BxD, logvar_BxD, y_BxD):
  """CLUB's upper bound in the public code's B x B x D form (losses.club_upper_bound
  computes the same in closed form, without the B x B tensor)."""
  positive = -jnp.sum((mu_BxD - y_BxD) ** 2 / 2 / jnp.exp(logvar_BxD), axis=-1)
  diff_BxBxD = y_BxD[None, :, :] - mu_BxD[:, None, :]
  negative = -jnp.sum(jnp.mean(diff_BxBxD ** 2, axis=1) / 2 / jnp.exp(logvar_BxD), axis=-1)
  return jnp.mean(positive - negative)
