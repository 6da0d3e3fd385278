"""The multi-seed protocol: its summary, its resumption, and what each seed's run writes.

The multi-seed run uses smoke_config() on the session's one-device mesh, so it runs on the
compiled programs `smoke_exp` already built (the seed is a run-time value), with a train
split of 6 batches (the dataset's size is a run-time value too)."""

import json
import re
import shutil

import numpy as np
import pytest

from mird_jax import config_check
from mird_jax.research import multiseed
from mird_jax.runs import save_points
from mird_jax.runs import train
from mird_jax.runs import workdir as workdir_lib
from smoke import smoke_config


def _multiseed_config():
  """Two one-epoch seeds of 6 steps; the test split keeps its 160 examples (the probes of
  the disentanglement check need them). The protocol builds its one dataset in its
  workdir."""
  config = smoke_config()
  config.data.synthetic.n_train = 48
  config.train.epochs, config.num_seeds, config.seed = 1, 2, 4
  return config


@pytest.fixture(name="seeds_dir", scope="module")
def _seeds_dir(smoke_exp, tmp_path_factory):
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
  # Each seed's wall time, read back from its one process's event file.
  assert "| seed | minutes | steps/s | processes |" in md
  assert re.search(r"\| 4 \| \d+\.\d \| n/a \| 1 \|", md), md  # One epoch: no speed.
  # Every seed read the protocol's one dataset, none built its own.
  assert (seeds_dir / "tfds").is_dir() and (seeds_dir / "raw").is_dir()
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
  # Both processes of seed 5 kept their event files (one second apart or not).
  assert re.search(r"\| 5 \| \d+\.\d \| n/a \| 2 \|", (workdir / "summary.md").read_text())


def test_run_outputs_hold_the_diagnostics(seeds_dir):
  run = seeds_dir / "seed_4"
  history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  terms = history[0]["valid_losses"]
  for key in ("task", "recon/text", "recon/audio", "recon/vision", "loss",
              "mi/s_l", "mi/a_v", "club_loglik/s_v", "orthogonal/s_a"):
    assert np.isfinite(terms[key]), key
  assert set(history[0]["train"]) >= {"loss/mi/s_a", "club_nll"}
  for entry in history:  # Each epoch's latent scale on validation, beside its CLUB bounds.
    for kind in ("variance", "norm"):
      values = entry["valid_latents"][kind]
      assert set(values) == {"z_s", "z_l", "z_a", "z_v"} and min(values.values()) > 0, entry
  results = json.loads((run / "results.json").read_text())
  probes = results["disentanglement"]["probe_r2"]
  assert set(probes) == {"z_s", "z_l", "z_a", "z_v"}
  # z_a is built from the audio frames alone, which carry the audio private factor and not
  # the vision one: a probe that read the wrong ids or factors could not show this.
  assert probes["z_a"]["private_a"] > probes["z_a"]["private_v"] + 0.1, probes["z_a"]
  assert set(results["disentanglement"]["knn_mi"]) == {"s_l", "s_a", "s_v"}
  assert set(results["disentanglement"]["latent_norm"]) == {"z_s", "z_l", "z_a", "z_v"}
  summary = json.loads((seeds_dir / "summary.json").read_text())
  assert summary["disentanglement"]["latent_norm.z_s"]["n"] == len(summary["seeds"])
  assert "| z_s |" in (seeds_dir / "summary.md").read_text()
  for name in ("curves.png", "latents.png"):
    assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_seed_config_reads_one_dataset_in_the_multiseed_workdir():
  config = multiseed.seed_config(smoke_config(), 7, "/runs/table")
  assert config.seed == 7 and config.data.data_dir == "/runs/table/tfds"
  assert config.data.manual_dir == "/runs/table/raw"  # The synthetic files go there.
  with pytest.raises(AttributeError):
    config.new_key = 1  # Still locked.


def test_robustness_scores_every_seed_into_the_summary(seeds_dir, smoke_exp, tmp_path):
  """--mode=robustness on a finished protocol: each seed's selected checkpoint scored under
  each condition (robustness.json), clean exactly its results' test metrics, the summary
  and compare aggregating them; results.json untouched, a rerun reads what it wrote."""
  from mird_jax.research import compare  # pylint: disable=g-import-not-at-top
  from mird_jax.runs import errors  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "protocol"
  shutil.copytree(seeds_dir, workdir)
  config = _multiseed_config()
  config.robustness.conditions = ("remove:audio", "noise:1.0")
  before = {s: (workdir / f"seed_{s}" / "results.json").read_text() for s in (4, 5)}
  summary = multiseed.robustness_only(config, workdir, mesh=smoke_exp.mesh)
  for s in (4, 5):
    run = workdir / f"seed_{s}"
    assert (run / "results.json").read_text() == before[s]
    record = json.loads((run / "robustness.json").read_text())
    assert record["names"] == ["clean", "remove:audio", "noise:1.0"]
    assert record["conditions"]["clean"] == json.loads(before[s])["test"]
    assert record["conditions"]["remove:audio"]["MAE"] != record["conditions"]["clean"]["MAE"]
    assert record["conditions"]["noise:1.0"]["MAE"] != record["conditions"]["clean"]["MAE"]
  assert summary["robustness"]["clean"]["MAE"] == summary["test"]["MAE"]
  assert summary["robustness"]["remove:audio"]["MAE"]["n"] == 2
  assert "## Corrupted inputs (test split)" in (workdir / "summary.md").read_text()
  stamp = (workdir / "seed_4" / "robustness.json").stat().st_mtime_ns
  multiseed.robustness_only(config, workdir, mesh=smoke_exp.mesh)
  assert (workdir / "seed_4" / "robustness.json").stat().st_mtime_ns == stamp
  other = tmp_path / "other"
  shutil.copytree(workdir, other)
  text = compare.table([str(workdir), str(other)])
  assert "Test MAE under corrupted inputs" in text
  assert "| config | clean | remove:audio | noise:1.0 |" in text  # In the configured order.
  assert "+0.000 (p=n/a, n=2)" in text  # Identical copies: no difference.
  (workdir / "seed_5" / "results.json").unlink()
  with pytest.raises(errors.RunError, match="seed 5 has not finished"):
    multiseed.robustness_only(config, workdir, mesh=smoke_exp.mesh)
