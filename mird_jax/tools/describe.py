"""`run.py --mode=describe`: parameter counts per optimizer group and module, forward FLOPs.

Shapes only (jax.eval_shape): nothing is allocated, so paper sizes describe on a laptop.
  python run.py --config=configs/mosi.py --mode=describe --config.bert.pretrained=False
"""

import flax
import jax
import numpy as np

from data_pipelines import input_pipeline
from mird_jax.models import factory
from mird_jax.training import param_groups


def abstract_params(config):
  mdl = factory.build(config)
  return mdl, jax.eval_shape(lambda: factory.init_params(mdl, jax.random.key(0)))


def forward_flops(mdl, params, batch_size: int) -> float:
  """FLOPs of one training-mode forward (latents, prediction, reconstructions) from XLA
  (a loop body, the LSTMs' included, counted once: mird_jax/tools/flops.py counts per iteration)."""
  batch = jax.eval_shape(lambda: factory.dummy_batch(mdl.spec, batch_size))

  def forward(p, b, rng):
    return mdl.apply({"params": p}, b, deterministic=False, rngs={"dropout": rng, "sample": rng})

  # XLA's cost analysis of the lowered (unoptimised) program: no compile needed.
  cost = jax.jit(forward).lower(params, batch, jax.random.key(0)).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def describe(config, with_flops: bool = True) -> str:
  mdl, params = abstract_params(config)
  groups = param_groups.counts(params, config.optim.groups)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  modules: dict[str, int] = {}
  for path, value in flat.items():
    modules[path.split("/")[0]] = modules.get(path.split("/")[0], 0) + int(np.prod(value.shape))
  lines = [f"parameters: {sum(groups.values()):,}"]
  lines += [f"  group {g}: {n:,}" for g, n in groups.items()]
  lines += [f"  module {m}: {n:,}" for m, n in modules.items()]
  if with_flops:
    b = config.data.batch_size + input_pipeline.unlabeled_batch_size(config.data)
    flops = forward_flops(mdl, params, b)
    lines.append(f"forward FLOPs at batch {b} (labelled + unlabelled), "
                 f"{factory.label(config)}: {flops:.4g} "
                 "(XLA cost analysis: loop bodies counted once; --mode=benchmark counts every "
                 "iteration of the compiled step)")
  return "\n".join(lines)
