"""--mode=sweep in one process: seeded proposals, real tiny trials that complete, fail on a
non-finite loss and get pruned, the test split never read during the search, the report
and the confirmation over seeds. (Several processes, a kill and PostgreSQL:
test_sweep_workers.py.)"""

import json
import math

import optuna
import pytest

from configs import sweeps
from smoke import smoke_config
from data_pipelines import input_pipeline
from mird_jax.research import compare
from mird_jax.research import summary as summary_lib
from mird_jax.research import sweep
from mird_jax.research import sweep_report

State = optuna.trial.TrialState


def _config(**sweep_keys):
  """The suite's smoke model (its compiled steps are the session's smoke_exp's) on the
  smoke sweep's space, one device, a smaller train split and no diagnostics."""
  config = smoke_config()
  config.sweep.space = sweeps.space("smoke", "mird")
  config.data.synthetic.n_train = 48
  config.train.epochs = 1
  config.train.num_devices = 1
  config.diagnostics.enabled = False
  for k, v in sweep_keys.items():
    setattr(config.sweep, k, v)
  config.lock()
  return config


def _fake_train(config, workdir, mesh=None, score_test=True, on_epoch=None):
  """A trial's result as a smooth function of its values, without training: the search
  alone (its proposals depend on the values it is told)."""
  del mesh
  assert not score_test
  workdir.mkdir(parents=True, exist_ok=True)
  value = (math.log10(config.optim.main_lr) + 2.5) ** 2 + abs(math.log10(config.loss.w_mi))
  on_epoch([{"epoch": 1, "valid": {"MAE": value}}], True)
  return {"valid": {"MAE": value}, "selected_epoch": 1}


def _proposals(workdir) -> list[dict]:
  name = json.loads((workdir / "sweep.json").read_text())["study"]
  assert json.loads((workdir / "study.json").read_text()) == {"study": name}
  study = optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'sweep.db'}")
  return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.fixture
def no_plots(monkeypatch):
  """The search alone: the report's figures (drawn and checked below) cost seconds, and
  the dataset each sweep builds in its workdir is never read by _fake_train."""
  monkeypatch.setattr(sweep_report, "_plots", lambda study, workdir: {})
  monkeypatch.setattr(sweep.tfds_builders, "prepare", lambda config, workdir: None)


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_seeded_sweep_proposes_the_same_trials_twice_even_when_resumed(tmp_path, sampler,
                                                                         no_plots):
  kw = dict(sampler=sampler, trials=6, startup_trials=2)
  first, second = tmp_path / "a", tmp_path / "b"
  sweep.run(_config(**kw), first, train_fn=_fake_train)
  sweep.run(_config(**kw), second, train_fn=_fake_train)
  assert _proposals(first) == _proposals(second) and len(_proposals(first)) == 6
  assert len({json.dumps(p, sort_keys=True) for p in _proposals(first)}) == 6  # No repeats.
  if sampler == "random":  # Another seed, other trials.
    other = tmp_path / "d"
    sweep.run(_config(**{**kw, "seed": 1}), other, train_fn=_fake_train)
    assert _proposals(other) != _proposals(first)
    return
  # Stopped after 3 trials, then rerun (a fresh sampler, as in a new process), with the
  # budget raised to 6: the same six trials as the uninterrupted sweep.
  resumed = tmp_path / "c"
  sweep.run(_config(**{**kw, "trials": 3}), resumed, train_fn=_fake_train)
  sweep.run(_config(**kw), resumed, train_fn=_fake_train)
  assert _proposals(resumed) == _proposals(first)
  # TPE models the results after its startup trials: told other values, it proposes
  # other trials from there on.
  told_otherwise = tmp_path / "e"
  negated = lambda c, w, **k: {"selected_epoch": 1, "valid": {
      "MAE": -_fake_train(c, w, **k)["valid"]["MAE"]}}
  sweep.run(_config(**kw), told_otherwise, train_fn=negated)
  assert _proposals(told_otherwise)[:2] == _proposals(first)[:2]
  assert _proposals(told_otherwise)[2:] != _proposals(first)[2:]


def test_a_different_config_in_the_workdir_is_refused(tmp_path, no_plots):
  sweep.run(_config(trials=1), tmp_path, train_fn=_fake_train)
  with pytest.raises(ValueError, match="different config.*sweep.sampler"):
    sweep.run(_config(trials=1, sampler="random"), tmp_path, train_fn=_fake_train)


# The real trials below: enqueued values, so each ends as the test says.
SPACE = (("optim.main_lr", "choice(0.003, 0.002, 0.0, 1e30)"),
         ("optim.bert_lr", "choice(0.001, 0.0)"))
ENQUEUED = [{"optim.main_lr": 0.003, "optim.bert_lr": 0.001},  # 0 learns
            {"optim.main_lr": 0.002, "optim.bert_lr": 0.001},  # 1 learns
            {"optim.main_lr": 1e30, "optim.bert_lr": 0.001},  # 2 diverges: non-finite
            {"optim.main_lr": 0.0, "optim.bert_lr": 0.0}]  # 3 learns nothing: pruned


def _real_config(confirm_seeds=0):
  config = _config(space=SPACE, trials=4, sampler="random", pruner="median",
                   startup_trials=2, pruner_warmup_epochs=0, confirm_seeds=confirm_seeds)
  config.unlock()
  config.train.epochs = config.train.patience = 2
  config.lock()
  return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory, smoke_exp):
  """A real 4-trial sweep (enqueued values), with the splits each step read;
  then the same command with confirm_seeds=2. On smoke_exp's mesh, so that every trial
  runs the session's compiled steps."""
  workdir = tmp_path_factory.mktemp("sweep")
  config = _real_config()
  study = optuna.create_study(storage=sweep.storage_url(config, workdir),
                              study_name=sweep.study_name(config), direction="minimize")
  for values in ENQUEUED:
    study.enqueue_trial(values)
  read = []
  original = input_pipeline.Streams.eval
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(input_pipeline.Streams, "eval",
               lambda self, split: (read.append(split), original(self, split))[1])
    search = sweep.run(config, workdir, mesh=smoke_exp.mesh)
    searched = list(read)
    confirmed = sweep.run(_real_config(confirm_seeds=2), workdir, mesh=smoke_exp.mesh)
  return workdir, search, searched, confirmed, read[len(searched):]


def test_trials_end_complete_failed_or_pruned_and_the_sweep_goes_on(finished):
  workdir, report, _, _, _ = finished
  by_number = {t["number"]: t for t in report["trials"]}
  assert sorted(by_number) == [0, 1, 2, 3]
  assert by_number[0]["state"] == by_number[1]["state"] == "COMPLETE"
  assert by_number[2]["state"] == "FAIL" and by_number[2]["note"].startswith("non-finite")
  assert by_number[3]["state"] == "PRUNED" and by_number[3]["epochs_reported"] == 1
  trial_3 = [json.loads(line) for line in (workdir / "trial_3" / "metrics.jsonl").open()]
  assert len(trial_3) == 1  # Stopped after its first of two epochs.
  for n, values in enumerate(ENQUEUED):
    assert by_number[n]["params"] == values
    assert json.loads((workdir / f"trial_{n}" / "overrides.json").read_text())[
        "overrides"] == values
  complete = [t for t in report["trials"] if t["state"] == "COMPLETE"]
  assert report["trials"][0] == complete[0] == min(complete, key=lambda t: t["value"])
  assert report["best"]["number"] == complete[0]["number"]
  # A complete trial's value is its selected epoch's validation MAE, as its run wrote it.
  results = json.loads((workdir / f"trial_{complete[0]['number']}" / "results.json")
                       .read_text())
  assert results["valid"]["MAE"] == pytest.approx(complete[0]["value"], rel=1e-12)


def test_the_search_reads_validation_only_and_scores_no_test(finished):
  workdir, _, searched, _, confirming = finished
  assert set(searched) == {"valid"}
  assert "test" in confirming  # The confirmation is where the test split is scored.
  for n in range(4):
    results = workdir / f"trial_{n}" / "results.json"
    if results.exists():
      assert "test" not in json.loads(results.read_text())
    assert not (workdir / f"trial_{n}" / "predictions.csv").exists()


def test_the_report_has_the_trials_importances_plots_and_confirmation(finished):
  workdir, _, _, report, _ = finished
  md = (workdir / "sweep.md").read_text()
  assert json.loads((workdir / "sweep.json").read_text())["best"] == json.loads(
      json.dumps(report["best"]))
  assert "4 of 4 trials ended" in md and f"{report['counts']['FAIL']} fail" in md
  for name in ("sweep_history.png", "sweep_slice.png", "sweep_epochs.png"):
    assert report["plots"][name] == "" and (workdir / name).read_bytes()[:4] == b"\x89PNG"
  c = report["confirmation"]
  best = f"trial_{report['best']['number']}"
  assert list(c["rows"]) == [best, "base"] and c["reference"] == "base"
  assert c["rows"][best]["seeds"] == c["rows"]["base"]["seeds"] == [1, 2]
  assert (f"| {best} | 1,2 |" in c["table"] and "n=2)" in c["table"]
          and "## Confirmation over seeds" in md)
  for row in c["rows"].values():
    assert math.isfinite(row["test"]["MAE"]["mean"])


def test_rerunning_a_finished_sweep_runs_nothing_more(finished, smoke_exp):
  workdir, _, _, before, _ = finished
  after = sweep.run(_real_config(confirm_seeds=2), workdir, mesh=smoke_exp.mesh)
  assert [t["number"] for t in after["trials"]] == [t["number"] for t in before["trials"]]
  assert after["confirmation"]["table"] == before["confirmation"]["table"]


def test_the_confirmation_pairs_only_the_seeds_both_rows_ran(tmp_path):
  def fake_row(name, seeds, shift):
    metrics = lambda s: {m: 1.0 + shift + 0.25 * s for m in compare.HEADLINE}
    results = {s: {"test": metrics(s), "valid": metrics(s),
                   "selected_epoch": 1, "epochs_run": 1, "select_metric": "MAE"}
               for s in seeds}
    (tmp_path / name).mkdir()
    (tmp_path / name / "summary.json").write_text(json.dumps(summary_lib.summarise(
        results, {})))
    return tmp_path / name
  c = sweep_report._confirmation(sweep_report.Confirmation(  # pylint: disable=protected-access
      best=fake_row("trial_3", [1, 2, 3], -0.2), base=fake_row("base", [1, 2], 0.0)))
  assert "| trial_3 | 1,2,3 |" in c["table"] and "| base | 1,2 |" in c["table"]
  assert "-0.200 (p=n/a, n=2)" in c["table"]  # Seed 3 has no base run to pair with.
  assert c["rows"]["trial_3"]["seeds"] == [1, 2, 3]
