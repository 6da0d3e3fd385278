"""--mode=compare: the table of several multi-seed workdirs and its paired tests."""

import json

import pytest
from scipy import stats

from mird_jax.research import compare
from mird_jax.research import paired
from mird_jax.research import summary as summary_lib




def _summary(workdir, name, values_by_seed, probes=None):
  d = workdir / name
  d.mkdir()
  per_seed = [{"seed": s, "selected_epoch": 1, "epochs_run": 1,
               "test": {"MAE": mae, "Corr": corr}, "valid": {},
               "disentanglement": {"knn_mi": {"s_a": mi}, "latent_variance": {"z_s": 10 * mi}},
               **({"probes_test": probes} if probes else {})}
              for s, (mae, corr, mi) in values_by_seed.items()]
  summary = summary_lib.summarise({r["seed"]: {**r, "select_metric": "MAE",
                                               "test_losses": {"mi/s_a": -r["test"]["MAE"]}}
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
  assert "var(z_s)" in text and f"+2.500 (p={p_mi:.3f}, n=3)" in text  # 10 x the MI.
  # The CLUB bounds of the test split (here minus the MAE): -0.150, the MAE's p.
  assert "| config | CLUB(s→a) |" in text and f"| none | -0.150 (p={p:.3f}, n=3) |" in text
  with pytest.raises(compare.CompareError, match="--reference=nope is not one of"):
    compare.table([str(ref), str(other)], reference="nope")
  with pytest.raises(compare.CompareError, match="no test metric 'Acc'"):
    compare.table([str(ref)], metrics=("Acc",))
  with pytest.raises(compare.CompareError, match=r"missing/summary.json: no such file"):
    compare.table([str(ref), str(tmp_path / "missing")])


def test_paired_test_is_undefined_without_spread_or_pairs():
  assert paired.paired({0: 1.0, 1: 2.0}, {0: 0.0, 1: 1.0})["p"] is None  # Constant diff.
  assert paired.paired({0: 1.0}, {1: 1.0}) == {"n": 0, "diff": None, "p": None}


def test_compare_reports_each_rows_ridge_probes_where_it_has_them(tmp_path):
  probes = {"text": {"MAE": 0.9, "Corr": 0.6}, "audio": {"MAE": 1.3, "Corr": 0.2}}
  ref = _summary(tmp_path, "mim", {0: (1.0, 0.5, 0.2), 1: (1.1, 0.4, 0.3)}, probes)
  other = _summary(tmp_path, "text", {0: (1.2, 0.3, 0.5), 1: (1.0, 0.5, 0.4)})
  text = compare.table([str(ref), str(other)], metrics=("MAE",))
  assert "| config | text MAE | text Corr | audio MAE | audio Corr |" in text
  assert "| mim | 0.900 ± 0.000 | 0.600 ± 0.000 | 1.300 ± 0.000 | 0.200 ± 0.000 |" in text
  assert "| text | n/a | n/a | n/a | n/a |" in text
  assert "Ridge probes" not in compare.table([str(other)], metrics=("MAE",))


def test_compare_reports_each_rows_wall_time_from_its_seed_folders(tmp_path, monkeypatch):
  ref = _summary(tmp_path, "mim", {0: (1.0, 0.5, 0.2), 1: (1.1, 0.4, 0.3)})
  other = _summary(tmp_path, "text", {0: (1.2, 0.3, 0.5), 1: (1.0, 0.5, 0.4)})
  assert "Training wall time" not in compare.table([str(ref), str(other)], metrics=("MAE",))
  read = {ref / "seed_0": {"train_minutes": 20.0, "steps_per_s": 0.4, "processes": 1},
          ref / "seed_1": {"train_minutes": 30.0, "steps_per_s": 0.5, "processes": 2},
          other / "seed_1": {"train_minutes": 6.0, "processes": 1}}
  monkeypatch.setattr(compare.timing, "read", lambda run_dir: read.get(run_dir, {}))
  text = compare.table([str(ref), str(other)], metrics=("MAE",))
  assert "| config | train minutes | steps/s | processes |" in text
  assert "| mim | 25.000 ± 7.071 | 0.450 ± 0.071 | 2 |" in text
  assert "| text | 6.000 | n/a | 1 |" in text  # One seed has no event file.


def test_a_table_of_one_row_has_no_paired_differences(tmp_path):
  only = _summary(tmp_path, "text", {0: (1.2, 0.3, 0.5), 1: (1.0, 0.5, 0.4)})
  text = compare.table([str(only)], metrics=("MAE",))
  assert "| text | 0,1 | 1.100 ± 0.141 |" in text and "Paired difference" not in text
  assert "var(z_s)" in text  # Its other blocks stay.
