"""The research protocol: multi-seed runs and their summary, the comparison table with its
paired tests, the per-run diagnostics, the ablation configs and the public schedule.

The multi-seed run uses smoke_config() on the session's one-device mesh, so it runs on the
compiled programs `smoke_exp` already built (the seed is a run-time value)."""

import json
import shutil

import jax
import numpy as np
import pytest
from scipy import stats

from configs import ablations
from mird_jax import compare
from mird_jax import config_check
from mird_jax import diagnostics
from mird_jax import losses
from mird_jax import model as model_lib
from mird_jax import multiseed
from mird_jax import optim
from mird_jax import save_points
from mird_jax import step as step_lib
from mird_jax import summary as summary_lib
from mird_jax import train
from mird_jax import workdir as workdir_lib
from smoke import smoke_config


_DATA_DIRS = {}  # The session's smoke dataset, which the multi-seed run reads too.


def _multiseed_config():
  config = smoke_config()
  config.train.epochs, config.num_seeds, config.seed = 1, 2, 4
  config.data.manual_dir, config.data.data_dir = _DATA_DIRS["manual"], _DATA_DIRS["data"]
  return config


@pytest.fixture(name="seeds_dir", scope="module")
def _seeds_dir(smoke_exp, tmp_path_factory):
  manual = smoke_exp.manual_dir
  _DATA_DIRS.update(manual=str(manual), data=str(manual.parent / "tfds"))
  workdir = tmp_path_factory.mktemp("multiseed")
  multiseed.run(_multiseed_config(), workdir, mesh=smoke_exp.mesh)
  return workdir


def test_multiseed_summary_is_the_mean_and_std_of_its_seeds(seeds_dir):
  summary = json.loads((seeds_dir / "summary.json").read_text())
  assert summary["seeds"] == [4, 5]
  per_seed = [json.loads((seeds_dir / f"seed_{s}" / "results.json").read_text())
              for s in (4, 5)]
  assert per_seed[0]["test"]["MAE"] != per_seed[1]["test"]["MAE"]  # Seeds differ.
  for part in ("test", "valid"):
    for metric in ("MAE", "Corr", "MAG/Acc2"):
      values = [r[part][metric] for r in per_seed]
      got = summary[part][metric]
      assert got["mean"] == pytest.approx(np.mean(values))
      assert got["std"] == pytest.approx(np.std(values, ddof=1))
  mi = [r["disentanglement"]["knn_mi"]["s_a"] for r in per_seed]
  assert summary["disentanglement"]["knn_mi.s_a"]["mean"] == pytest.approx(np.mean(mi))
  assert [r["selected_epoch"] for r in summary["per_seed"]] == [1, 1]
  assert summary["config"]["seed"] == 4 and summary["config"]["num_seeds"] == 2
  md = (seeds_dir / "summary.md").read_text()
  assert "# Summary over 2 seeds (4, 5)" in md and "| MAE |" in md and '"num_seeds": 2' in md
  # Every seed read the one dataset (here the session's), none built its own.
  assert not list(seeds_dir.glob("seed_*/tfds")) and not list(seeds_dir.glob("seed_*/raw"))


def test_a_seed_equals_a_single_run_with_that_seed(seeds_dir):
  config = multiseed.seed_config(_multiseed_config(), 5, seeds_dir)
  assert config.seed == 5
  single = json.loads((seeds_dir / "seed_5" / "results.json").read_text())
  saved = json.loads((seeds_dir / "seed_5" / "config.json").read_text())
  assert saved == json.loads(json.dumps(config.to_dict()))
  assert single["test"]["MAE"] == pytest.approx(
      json.loads((seeds_dir / "summary.json").read_text())["per_seed"][1]["test"]["MAE"])


def test_rerun_skips_finished_seeds_and_refuses_another_config(seeds_dir, smoke_exp,
                                                              monkeypatch):
  def no_training(*args, **kwargs):
    raise AssertionError("a finished seed was trained again")
  monkeypatch.setattr(train, "train_and_evaluate", no_training)
  before = (seeds_dir / "summary.json").read_text()
  multiseed.run(_multiseed_config(), seeds_dir, mesh=smoke_exp.mesh)
  assert (seeds_dir / "summary.json").read_text() == before
  other = _multiseed_config()
  other.model.constraint = "none"
  with pytest.raises(config_check.ConfigError, match=r"different config \(changed: "
                     r"model.constraint\)"):
    multiseed.run(other, seeds_dir, mesh=smoke_exp.mesh)
  assert (seeds_dir / "summary.json").read_text() == before


class _Killed(Exception):
  """Raised at a save point: the run stops there, as a kill would (save_points.py)."""


def test_a_multiseed_run_killed_mid_seed_ends_with_the_same_summary(seeds_dir, smoke_exp,
                                                                   tmp_path):
  """Seed 5 stopped between its best and its latest checkpoint (the state that once made
  the protocol unfinishable), then the same command: seed 4 is not trained again, seed 5
  ends with the results of the uninterrupted run, and so does the summary."""
  workdir = tmp_path / "multiseed"
  shutil.copytree(seeds_dir, workdir)
  shutil.rmtree(workdir / "seed_5")
  (workdir / "summary.json").unlink()

  def kill(point):
    if point == "best_saved":
      raise _Killed(point)
  save_points.observer = kill
  try:
    with pytest.raises(_Killed):
      multiseed.run(_multiseed_config(), workdir, mesh=smoke_exp.mesh)
  finally:
    save_points.observer = None
  assert not (workdir / "seed_5" / "results.json").exists()
  assert workdir_lib.step_dirs(workdir / "seed_5" / "best") and not workdir_lib.step_dirs(
      workdir / "seed_5" / "ckpt")
  multiseed.run(_multiseed_config(), workdir, mesh=smoke_exp.mesh)
  for name in ("summary.json", "seed_4/results.json", "seed_5/results.json",
               "seed_5/metrics.jsonl"):
    assert (workdir / name).read_text() == (seeds_dir / name).read_text(), name


def test_run_outputs_hold_the_diagnostics(seeds_dir):
  run = seeds_dir / "seed_4"
  history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  terms = history[0]["valid_losses"]
  for key in ("task", "recon/text", "recon/audio", "recon/vision", "loss",
              "mi/s_l", "mi/a_v", "club_loglik/s_v", "orthogonal/s_a"):
    assert np.isfinite(terms[key]), key
  assert set(history[0]["train"]) >= {"loss/mi/s_a", "club_nll"}
  results = json.loads((run / "results.json").read_text())
  probes = results["disentanglement"]["probe_r2"]
  assert set(probes) == {"z_s", "z_l", "z_a", "z_v"}
  # z_a is built from the audio frames alone, which carry the audio private factor and not
  # the vision one: a probe that read the wrong ids or factors could not show this.
  assert probes["z_a"]["private_a"] > probes["z_a"]["private_v"] + 0.1, probes["z_a"]
  assert set(results["disentanglement"]["knn_mi"]) == {"s_l", "s_a", "s_v"}
  for name in ("curves.png", "latents.png"):
    assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_diagnostic_rows_are_wired_to_the_model(smoke_exp, smoke_start):
  """The per-example rows carry the eval step's predictions and, for every pair, the
  estimator's (mu, logvar) of that pair's conditioning latent (no new compile: both steps
  are the session's)."""
  state, batch, _ = smoke_start
  exp = smoke_exp
  device_batch = exp.to_device(batch)
  rows = jax.device_get(exp.rows_step(state.params, device_batch))
  np.testing.assert_allclose(rows["pred"], jax.device_get(exp.eval_step(state.params,
                                                                        device_batch)),
                             rtol=1e-5, atol=1e-6)
  latents = {k: rows[k] for k in step_lib.LATENTS}
  stats_ = exp.model.apply({"params": state.params}, latents,
                           method=model_lib.MIRD.club_stats)
  assert len(stats_) == 6
  for (x, y), (mu, logvar) in stats_.items():
    np.testing.assert_allclose(rows[f"club_mu/{x}_{y}"], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[f"club_logvar/{x}_{y}"], logvar, rtol=1e-5, atol=1e-6)
  n = len(batch["label"])
  assert all(len(rows[f"recon/{m}/count"]) == n for m in ("text", "audio", "vision"))
  np.testing.assert_array_equal(rows["recon/audio/count"], batch["audio_len"])


def test_split_terms_pool_the_whole_split():
  """Masked means over every real frame of the split (not a mean of per-example means),
  the CLUB terms on all latents at once, and the configured combination of the terms."""
  rng = np.random.default_rng(0)
  n, d = 6, 3
  rows = {"pred": rng.normal(size=n), **{f"z_{k}": rng.normal(size=(n, d)) for k in "slav"},
          "recon/audio/sum": np.array([1.0, 2.0, 0.0, 4.0, 1.0, 1.0]),
          "recon/audio/count": np.array([1.0, 4.0, 0.0, 2.0, 1.0, 2.0])}
  for x, y in (("s", "a"), ("l", "v")):
    rows[f"club_mu/{x}_{y}"] = rng.normal(size=(n, d))
    rows[f"club_logvar/{x}_{y}"] = rng.uniform(-1, 1, size=(n, d))
  labels = rng.normal(size=n)
  cfg = step_lib.StepConfig(task="mse", combine="log", log_eps=1e-8,
                            terms=("task", "recon/audio", "mi/s_a"), constraint="mim",
                            estimators=True, club_steps=1, refresh_latents=False,
                            text_target="vocab_logits", kl_reduce="mean", accumulate=1)
  h = {"w/task": 1.0, "w/recon_audio": 2.0, "w/mi": 0.5}
  got = diagnostics.split_terms(rows, labels, cfg, h)
  assert got["recon/audio"] == pytest.approx(9.0 / 10.0)
  assert got["task"] == pytest.approx(np.mean((rows["pred"] - labels) ** 2))
  pairwise = losses.club_upper_bound_pairwise(rows["club_mu/s_a"], rows["club_logvar/s_a"],
                                              rows["z_a"])
  assert got["mi/s_a"] == pytest.approx(float(pairwise), rel=1e-5)
  assert "mi/l_v" in got and "mi/s_v" not in got and "club_loglik/s_a" in got
  assert got["orthogonal/s_l"] == pytest.approx(float(np.sum((rows["z_s"].T @ rows["z_l"] /
                                                               n) ** 2)), rel=1e-5)
  want = (np.log(got["task"] + 1e-8) + 2.0 * np.log(got["recon/audio"] + 1e-8)
          + 0.5 * got["mi/s_a"])
  assert got["loss"] == pytest.approx(want, rel=1e-5)


def test_seed_config_reads_one_dataset_in_the_multiseed_workdir():
  config = multiseed.seed_config(smoke_config(), 7, "/runs/table")
  assert config.seed == 7 and config.data.data_dir == "/runs/table/tfds"
  assert config.data.manual_dir == "/runs/table/raw"  # The synthetic files go there.
  with pytest.raises(AttributeError):
    config.new_key = 1  # Still locked.


def _summary(workdir, name, values_by_seed):
  d = workdir / name
  d.mkdir()
  per_seed = [{"seed": s, "selected_epoch": 1, "epochs_run": 1,
               "test": {"MAE": mae, "Corr": corr}, "valid": {},
               "disentanglement": {"knn_mi": {"s_a": mi}}}
              for s, (mae, corr, mi) in values_by_seed.items()]
  summary = summary_lib.summarise({r["seed"]: {**r, "select_metric": "MAE", "test_losses": {}}
                                 for r in per_seed}, {"seed": 0})
  (d / "summary.json").write_text(json.dumps(summary))
  return d


def test_compare_prints_means_and_paired_tests_against_the_reference(tmp_path):
  ref = _summary(tmp_path, "mim", {0: (1.0, 0.5, 0.2), 1: (1.1, 0.4, 0.3), 2: (0.9, 0.6, 0.1)})
  other = _summary(tmp_path, "none", {0: (1.2, 0.3, 0.5), 1: (1.25, 0.35, 0.4),
                                      2: (1.0, 0.5, 0.45), 3: (5.0, 0.0, 0.0)})
  text = compare.table([str(ref), str(other)], reference="mim", metrics=("MAE", "Corr"))
  assert "| mim | 0,1,2 | 1.000 ± 0.100 | 0.500 ± 0.100 |" in text
  # Seed 3 has no partner in the reference: the test pairs seeds 0-2 only.
  p = stats.ttest_rel([1.2, 1.25, 1.0], [1.0, 1.1, 0.9]).pvalue
  assert f"| none | +0.150 (p={p:.3f}, n=3) |" in text
  p_mi = stats.ttest_rel([0.5, 0.4, 0.45], [0.2, 0.3, 0.1]).pvalue
  assert f"+0.250 (p={p_mi:.3f}, n=3)" in text
  with pytest.raises(compare.CompareError, match="--reference=nope is not one of"):
    compare.table([str(ref), str(other)], reference="nope")
  with pytest.raises(compare.CompareError, match="no test metric 'Acc'"):
    compare.table([str(ref)], metrics=("Acc",))
  with pytest.raises(compare.CompareError, match=r"missing/summary.json: no such file"):
    compare.table([str(ref), str(tmp_path / "missing")])


def test_paired_test_is_undefined_without_spread_or_pairs():
  assert compare.paired({0: 1.0, 1: 2.0}, {0: 0.0, 1: 1.0})["p"] is None  # Constant diff.
  assert compare.paired({0: 1.0}, {1: 1.0}) == {"n": 0, "diff": None, "p": None}


def test_public_ramp_reaches_the_peak_on_the_last_step_then_zero():
  config = smoke_config()
  config.optim.schedule = "public_ramp"
  total = 7 * 40  # epochs x int(N / B): the loader drops the last partial batch.
  h = optim.hparams(config, total_steps=total)
  lr = lambda step: float(optim.learning_rates(step, h)["main"])
  peak = config.optim.main_lr
  assert lr(0) == 0.0
  assert lr(total // 2) == pytest.approx(peak / 2)
  assert lr(total - 1) == pytest.approx(peak * (total - 1) / total)
  assert lr(total) == 0.0 and lr(total + 5) == 0.0


@pytest.mark.parametrize("base", sorted(ablations.BASES))
def test_every_ablation_is_a_valid_override_of_its_base(base):
  reference = ablations.get_config(f"{base},mim")
  for name in ablations.ABLATIONS:
    if name == "no_unlabeled" and not reference.data.unlabeled_ratio:
      with pytest.raises(ValueError, match="already trains without unlabelled data"):
        ablations.get_config(f"{base},{name}")
      continue
    config = ablations.get_config(f"{base},{name}")
    config_check.validate(config)
    changed = sorted(multiseed_diff(reference.to_dict(), config.to_dict()))
    assert (changed == []) == (name == "mim"), (name, changed)


def multiseed_diff(a, b, prefix=""):
  for key in a:
    if isinstance(a[key], dict):
      yield from multiseed_diff(a[key], b[key], f"{prefix}{key}.")
    elif a[key] != b[key]:
      yield f"{prefix}{key}"


def test_ablation_names_are_checked():
  with pytest.raises(ValueError, match="BASE,ABLATION"):
    ablations.get_config("demo")
  assert ablations.get_config(None).to_dict() == ablations.get_config("demo,mim").to_dict()
  with pytest.raises(ValueError, match="ABLATION one of"):
    ablations.get_config("demo,nc")


def test_seeds_share_one_compiled_train_step(smoke_exp):
  other = smoke_config()
  other.seed = 9
  fn, _, _ = step_lib.jit_train_step(other, smoke_exp.model, smoke_exp.mesh)
  assert fn is smoke_exp.train_step


def test_the_seed_in_the_state_drives_dropout(smoke_exp, smoke_start):
  """The same state and batch under another hparams seed: another dropout draw, so another
  loss; under the same seed, the same loss (one compiled step serves both)."""
  state, batch, unlabeled = smoke_start
  b, u = smoke_exp.to_device(batch), smoke_exp.to_device(unlabeled)

  def loss(seed):
    s = state.replace(hparams={**state.hparams, "seed": np.asarray(seed, np.int32)})
    return float(smoke_exp.train_step(jax.device_put(s, smoke_exp.replicated), b, u)[1]["loss"])
  assert loss(0) == loss(0) != loss(1)
