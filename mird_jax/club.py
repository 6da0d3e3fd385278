"""CLUB estimator networks (Cheng et al., 2020): q(y | x) = N(mu(x), exp(logvar(x))).

One estimator per latent pair, conditioned in the public code's directions (mird_details.md,
7.13): specific-specific l->a, l->v, a->v and shared-specific s->l, s->a, s->v. logvar goes
through tanh, so the variance stays in [1/e, e]. The losses (log-likelihood and the
closed-form upper bound) live in losses.py.
"""

import flax.linen as nn
import jax.numpy as jnp

PAIRS = (("l", "a"), ("l", "v"), ("a", "v"), ("s", "l"), ("s", "a"), ("s", "v"))


def pair_name(x: str, y: str) -> str:
  return f"club_{x}_{y}"


class Club(nn.Module):
  """mu-net and logvar-net, each Dense -> ReLU -> Dense."""
  hidden: int
  d_y: int

  @nn.compact
  def __call__(self, x_BxD):
    mu = nn.Dense(self.d_y, name="mu_out")(nn.relu(nn.Dense(self.hidden, name="mu_hidden")(x_BxD)))
    logvar = jnp.tanh(nn.Dense(self.d_y, name="logvar_out")(
        nn.relu(nn.Dense(self.hidden, name="logvar_hidden")(x_BxD))))
    return mu, logvar
