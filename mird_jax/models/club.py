"""CLUB estimator networks (Cheng et al., 2020): q(y | x) = N(mu(x), exp(logvar(x))).

One estimator per latent pair, conditioned in the public code's directions:
specific-specific l->a, l->v, a->v and shared-specific s->l, s->a, s->v (CLUB is not
symmetric). logvar goes through tanh, so the variance stays in [1/e, e]. The losses
(log-likelihood and the closed-form upper bound) live in losses.py.
"""

import flax.linen as nn
import jax.numpy as jnp

from mird_jax.models import initializers

PAIRS = (("l", "a"), ("l", "v"), ("a", "v"), ("s", "l"), ("s", "a"), ("s", "v"))


class Club(nn.Module):
  """mu-net and logvar-net, each Dense -> ReLU -> Dense."""
  hidden: int
  d_y: int
  init_scheme: str

  @nn.compact
  def __call__(self, x_BxD):
    def dense(features, fan_in, name):
      return initializers.dense(features, fan_in, self.init_scheme, jnp.float32, name)
    d_x = x_BxD.shape[-1]
    mu = dense(self.d_y, self.hidden, "mu_out")(nn.relu(dense(self.hidden, d_x, "mu_hidden")(
        x_BxD)))
    logvar = jnp.tanh(dense(self.d_y, self.hidden, "logvar_out")(
        nn.relu(dense(self.hidden, d_x, "logvar_hidden")(x_BxD))))
    return mu, logvar
