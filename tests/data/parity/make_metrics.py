r"""Writes tests/data/parity/metrics.npz: MMSA 2.2.1's own regression metrics (its
`MetricsTop`, read from a checkout as it is) on random and edge cases, for
tests/evaluation/test_parity_metrics.py. Run by hand in the venv of make_mird.py (torch,
numpy, scikit-learn):
  git clone https://github.com/thuiar/MMSA /tmp/MMSA   # the commit the fixture names
  /tmp/ref/bin/python tests/data/parity/make_metrics.py --mmsa /tmp/MMSA

The edge cases put predictions and labels exactly on MMSA's class boundaries (0, the
+-0.5 rounding points, the clip limits, and SIMS's +-0.1, +-0.7), where a rule or a dtype
that differs from MMSA's (it compares float32 values) changes a class.
"""

import argparse
import importlib.util
import pathlib

import numpy as np
import provenance
import torch

EDGES = {
    "mosi": [0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.0, -3.0, 3.5, -3.5, 1 / 3, -1 / 3, 2.0],
    "sims": [0.0, 0.1, -0.1, 0.7, -0.7, 1.0, -1.0, 1.01, -1.01, 0.2, -0.2, 0.4, 0.8, -0.8],
}
SUITES = {"mosi": "MOSI", "mosei": "MOSEI", "sims": "SIMS"}


def _cases(rng):
  """{name: (suite, preds, labels)}, float32 as MMSA's tensors are."""
  f32 = lambda x: np.asarray(x, np.float32)
  mosi_grid = np.round(np.arange(-3, 3.01, 0.2), 1)
  sims_grid = np.round(np.arange(-1, 1.01, 0.2), 1)
  out = {
      "mosi_random": ("mosi", f32(rng.normal(0, 1.5, 300)), f32(rng.choice(mosi_grid, 300))),
      "mosei_random": ("mosei", f32(rng.normal(0, 1.2, 300)),
                       f32(rng.choice(np.round(np.arange(-3, 3.01, 1 / 3), 4), 300))),
      "sims_random": ("sims", f32(rng.uniform(-1.2, 1.2, 300)), f32(rng.choice(sims_grid, 300))),
  }
  for suite, edges in EDGES.items():
    e = np.array(edges)
    preds, labels = np.meshgrid(e, e)  # Every pair of edge values, once each way.
    out[f"{suite}_edges"] = (suite, f32(preds.ravel()), f32(labels.ravel()))
    near = np.concatenate([e, np.nextafter(f32(e), f32(np.inf)),
                           np.nextafter(f32(e), f32(-np.inf))])
    out[f"{suite}_near_edges"] = (suite, f32(rng.permutation(near)), f32(near))
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mmsa", required=True, help="a checkout of thuiar/MMSA")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "metrics.npz"))
  flags = parser.parse_args()
  root = pathlib.Path(flags.mmsa).resolve()
  spec = importlib.util.spec_from_file_location(
      "metricsTop", root / "src" / "MMSA" / "utils" / "metricsTop.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  metrics = module.MetricsTop("regression")
  out = provenance.meta(root)
  for name, (suite, preds, labels) in _cases(np.random.default_rng(0)).items():
    result = metrics.getMetics(SUITES[suite])(torch.from_numpy(preds), torch.from_numpy(labels))
    out[f"{name}/suite"], out[f"{name}/preds"], out[f"{name}/labels"] = (
        np.array(suite), preds, labels)
    for key, value in result.items():
      out[f"{name}/mmsa/{key}"] = np.array(float(value))
  np.savez_compressed(flags.out, **out)
  print(f"wrote {flags.out}: {len(out)} arrays from MMSA {str(out['meta/commit'])[:7]}")


if __name__ == "__main__":
  main()
