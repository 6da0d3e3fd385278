"""MIB's modules against the public MIB code (tests/data/parity/mib.npz, written by
tests/data/parity/make_mib.py from TmacMai/Multimodal-Information-Bottleneck): each
variant's whole forward (every encoder readout, bottleneck and the prediction) under
configs/public.py's preset, and the public tensor fusions alone. Dropout off, inputs full
length; each bottleneck's sigma is ~1e-15 in the fixture, so the public code's random
draw is z = mu. Forwards agree to 1e-5."""

import functools

import jax
import numpy as np
import pytest

from mird_jax.models import factory
from mird_jax.models import mib
from mird_jax.models import public_weights
import parity

TOL = 1e-5
VARIANTS = ("complete", "early", "late")


@functools.lru_cache(maxsize=3)
def _public(variant):
  d = parity.fixture("mib")
  config = parity.mib_config(d, variant)
  model = factory.build(config)
  params = public_weights.mib(parity.template(model), parity.mib_state(d, variant), variant,
                              config.model.mib.heads)
  return model, params


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variants_forward_matches(variant):
  d = parity.fixture("mib")
  model, params = _public(variant)
  # The public test() samples z; with sigma ~1e-15 a draw is its mean.
  pred, aux = jax.jit(lambda p, b: model.apply({"params": p}, b, deterministic=True,
                                               rngs={"sample": jax.random.key(0)}))(
                                                   params, parity.mib_batch(d))
  parity.assert_close(pred, d[f"{variant}/pred"][:, 0], TOL, f"{variant} prediction")
  x = {"l": d[f"{variant}/x_l"], "a": d[f"{variant}/seq_a"][-1], "v": d[f"{variant}/seq_v"][-1]}
  if variant == "early":  # No unimodal bottleneck: the readouts are the latents.
    for m in "lav":
      parity.assert_close(aux[f"z_{m}"], x[m], TOL, f"{variant} readout {m}")
  for m in ("lav" if variant != "early" else ""):
    parity.assert_close(aux[f"mu_{m}"], d[f"{variant}/mu_{m}"], TOL, f"{variant} mu_{m}")
    parity.assert_close(aux[f"pred_{m}"], d[f"{variant}/pred_{m}"][:, 0], TOL,
                        f"{variant} pred_{m}")
  if variant != "late":
    parity.assert_close(aux["mu_f"], d[f"{variant}/mu_f"], TOL, f"{variant} fused mu")
  parity.assert_close(aux["z_f"], d[f"{variant}/mu_f" if variant != "late" else
                                    f"{variant}/fused"], TOL, f"{variant} fused")


@pytest.mark.parametrize("variant", ["complete", "late"])
def test_the_public_tensor_fusion_of_each_variant_file_matches(variant):
  d = parity.fixture("mib")
  state = {f"fusion.fusion1.{k.split('/w/')[1]}": v for k, v in d.items()
           if k.startswith(f"tensor/{variant}/w/")}
  fusion = mib.Fusion("tensor", 4, tensor_head="public", variant=variant)
  x = [d[f"tensor/x_{m}"] for m in "lav"]
  template = jax.eval_shape(lambda: fusion.init(jax.random.key(0), *x))["params"]
  params = _tensor_params(template, state)
  out = fusion.apply({"params": params}, *x)
  parity.assert_close(out, d[f"tensor/{variant}/out"], TOL, f"{variant} tensor fusion")
  # Our own TFN (tensor_head=ours) is a different head, so the public one is a real choice.
  ours = mib.Fusion("tensor", 4)
  assert ours.init(jax.random.key(0), *x)["params"].keys() != params.keys()


def _tensor_params(template, state):
  """The public tensor class's used layers (its other modules are never called)."""
  used = {n: v for n, v in state.items() if "post_fusion_layer_" in n}
  return public_weights.convert({"fusion": template}, used,
                                lambda p: public_weights.mib_source(p, 1), "tensor")["fusion"]


def test_unused_public_modules_are_named_in_the_fixture_and_skipped_by_the_converter():
  d = parity.fixture("mib")
  unused = str(d["late/unused"]).split("\n")
  assert "fusion.fc_mu.weight" in unused and "fusion.fusion1.rnn.weight_ih_l0" in unused
  model, _ = _public("late")
  state = {**parity.mib_state(d, "late"), **{n: np.zeros(1) for n in unused}}
  public_weights.mib(parity.template(model), state, "late", 5)  # No error.
  # What one variant skips, another needs: E-MIB's unused heads are C-MIB's.
  model_c, _ = _public("complete")
  state_c = {k: v for k, v in parity.mib_state(d, "complete").items()
             if not k.startswith("fusion.encoder_l.")}
  with pytest.raises(ValueError, match=r"missing fusion\.encoder_l\.0\.weight"):
    public_weights.mib(parity.template(model_c), state_c, "complete", 5)


def test_the_public_concat_sum_and_product_fusions_match():
  d = parity.fixture("mib")
  x = [d[f"tensor/x_{m}"] for m in "lav"]
  for kind, public in (("sum", "addition"), ("product", "multiplication")):
    out = mib.Fusion(kind, 4).apply({}, *x)
    parity.assert_close(out, d[f"fusion/{public}/out"], TOL, kind)
  state = {f"fusion.fusion1.{k.split('/w/')[1]}": v for k, v in d.items()
           if k.startswith("fusion/concat/w/")}
  fusion = mib.Fusion("concat", 4)
  template = jax.eval_shape(lambda: fusion.init(jax.random.key(0), *x))["params"]
  params = public_weights.convert({"fusion": template}, state,
                                  lambda p: public_weights.mib_source(p, 1), "concat")["fusion"]
  parity.assert_close(fusion.apply({"params": params}, *x), d["fusion/concat/out"], TOL,
                      "concat")
