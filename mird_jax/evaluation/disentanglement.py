"""An independent check of disentanglement, one that does not trust CLUB.

- Ridge probes: how much of each ground-truth factor of the synthetic benchmark
  (data_pipelines/synthetic.py writes them to factors.npz) a latent carries linearly,
  as the held-out R^2 of a ridge regression from the latent to the factor.
- A k-nearest-neighbour MI estimate (Kraskov, Stoegbauer and Grassberger 2004, estimator 1)
  between z_s and each specific latent: no trained network, no Gaussian assumption.

Plain NumPy/SciPy on host arrays. The KSG estimator is biased towards 0 in many
dimensions, so each latent is first standardised and reduced to its leading principal
components (`knn_dims`); compare the estimate between runs, not with the CLUB bound.
"""

import numpy as np
from scipy import spatial
from scipy import special

from mird_jax.evaluation import probes

_LAMBDAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)  # Chosen on the validation split.
MODALITY_OF = {"t": 0, "a": 1, "v": 2}  # Column of the per-modality factors.
FACTORS = ("shared", "private_t", "private_a", "private_v",
           "nuisance_t", "nuisance_a", "nuisance_v")


def r2(y_true, y_pred) -> float:
  """Coefficient of determination, averaged over output columns (as sklearn's default)."""
  y_true = y_true.reshape(len(y_true), -1)
  y_pred = y_pred.reshape(len(y_pred), -1)
  sse = ((y_true - y_pred) ** 2).sum(0)
  sst = ((y_true - y_true.mean(0)) ** 2).sum(0)
  return float(np.mean(1.0 - sse / np.maximum(sst, 1e-12)))


def ridge_probe_r2(x: dict, y: dict) -> float:
  """Test R^2 of a ridge probe fitted on x["train"] -> y["train"], its penalty picked by
  validation R^2. x: {split: [N, D]}, y: {split: [N] or [N, K]}."""
  xs = probes.standardise(x)
  ys = {k: v.reshape(len(v), -1).astype(np.float64) for k, v in y.items()}

  def score(lam, split):
    return r2(ys[split], probes.ridge(xs["train"], ys["train"], xs[split], lam))
  best = max(_LAMBDAS, key=lambda lam: score(lam, "valid"))
  return score(best, "test")


def factor_targets(factors, ids) -> dict[str, np.ndarray]:
  """{factor name: values of the examples `ids`, in that order} from a factors.npz mapping.

  Raises KeyError naming the first id the file does not hold.
  """
  index = {str(i): n for n, i in enumerate(factors["id"])}
  missing = [i for i in ids if i not in index]
  if missing:
    raise KeyError(f"factors file has no example {missing[0]!r} ({len(missing)} of "
                   f"{len(ids)} ids missing)")
  rows = np.array([index[i] for i in ids])
  out = {"shared": factors["shared"][rows]}
  for m, col in MODALITY_OF.items():
    out[f"private_{m}"] = factors["private"][rows, col]
    out[f"nuisance_{m}"] = factors["nuisance"][rows, col]
  return out


def probe_table(latents: dict, targets: dict) -> dict[str, dict[str, float]]:
  """{latent: {factor: held-out R^2}}. latents: {split: {name: [N, D]}}; targets:
  {split: {factor: [N, ...]}}."""
  names = sorted(latents["test"])
  return {z: {f: ridge_probe_r2({s: latents[s][z] for s in latents},
                                {s: targets[s][f] for s in targets})
              for f in FACTORS} for z in names}


def principal_components(x_NxD, dims: int) -> np.ndarray:
  """x standardised per column, projected onto its `dims` leading principal components
  (all columns when dims is 0 or >= D)."""
  x = (x_NxD - x_NxD.mean(0)) / (x_NxD.std(0) + 1e-8)
  if dims <= 0 or dims >= x.shape[1]:
    return x
  _, _, vt = np.linalg.svd(x, full_matrices=False)
  return x @ vt[:dims].T


def ksg_mi(x_NxD, y_NxE, k: int = 3) -> float:
  """KSG estimator 1 of I(X; Y) in nats, max-norm in every space.

  For each point, eps = distance to its k-th neighbour in the joint space; n_x, n_y = the
  points strictly closer than eps in each marginal. I = psi(k) + psi(N) - <psi(n_x + 1) +
  psi(n_y + 1)>. Can come out slightly negative for independent variables.
  """
  x = np.asarray(x_NxD, np.float64).reshape(len(x_NxD), -1)
  y = np.asarray(y_NxE, np.float64).reshape(len(y_NxE), -1)
  n = len(x)
  if n <= k:
    raise ValueError(f"k-NN MI needs more than k={k} points, got {n}")
  joint = np.concatenate([x, y], 1)
  dist, _ = spatial.cKDTree(joint).query(joint, k=k + 1, p=np.inf)
  radius = np.nextafter(dist[:, -1], 0)  # "Strictly closer than eps".

  def count(z):
    return spatial.cKDTree(z).query_ball_point(z, radius, p=np.inf, return_length=True) - 1
  nx, ny = count(x), count(y)
  return float(special.digamma(k) + special.digamma(n)
               - np.mean(special.digamma(nx + 1) + special.digamma(ny + 1)))


def knn_mi_table(latents: dict, k: int, dims: int) -> dict[str, float]:
  """KSG MI between the hub latent and each modality's latent on one split: MIRD's
  {"s_l", "s_a", "s_v"} (z_s against z_l, z_a, z_v) or MIB's {"f_l", "f_a", "f_v"} (the
  fused z_f against each unimodal one); {} for a model without a hub (text only)."""
  hub = "s" if "z_s" in latents else "f"
  if f"z_{hub}" not in latents:
    return {}
  reduced = {z: principal_components(v, dims) for z, v in latents.items()}
  return {f"{hub}_{m}": ksg_mi(reduced[f"z_{hub}"], reduced[f"z_{m}"], k) for m in "lav"}


def latent_spread(latents: dict) -> dict[str, float]:
  """{latent: summed per-dimension variance across examples}. The CLUB bound's estimator
  variance is bounded below (tanh logvar), so a latent with a small spread gets a small
  bound whatever it shares: read the bound beside this."""
  return {z: float(np.var(v, axis=0).sum()) for z, v in latents.items()}


def latent_norm(latents: dict) -> dict[str, float]:
  """{latent: mean Euclidean norm over examples}: with latent_spread, whether a latent
  shrank as a whole (both fall) or only collapsed onto a point (the spread falls alone)."""
  return {z: float(np.linalg.norm(np.asarray(v, np.float64), axis=1).mean())
          for z, v in latents.items()}


def latent_scale(latents: dict) -> dict[str, dict[str, float]]:
  """{"variance": latent_spread, "norm": latent_norm}: each latent's scale on one split."""
  return {"variance": latent_spread(latents), "norm": latent_norm(latents)}
