"""docs/results.sh, the command list that reproduces docs/results.md: run with a recording
stand-in for Python's run.py, it trains every row of every table of configs/research.py
on one shared dataset, runs each tuned row's sweep, links its confirmation's rows and
compares each table against its reference row."""

import os
import pathlib
import subprocess
import sys

from configs import research

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _stub(tmp_path):
  """A stand-in for Python: `-c` runs the real one, anything else is recorded."""
  log = tmp_path / "calls.log"
  stub = tmp_path / "python"
  stub.write_text(f"""#!/usr/bin/env bash
if [ "$1" = -c ]; then exec {sys.executable} "$@"; fi
echo "$@" >> {log}
for a in "$@"; do case $a in --workdir=*) w=${{a#--workdir=}};; esac; done
case "$*" in
  *--mode=sweep*) mkdir -p "$w"; echo '{{"best": {{"number": 3}}}}' > "$w/sweep.json";;
  *--mode=compare*) echo "table of $*";;
esac
""")
  stub.chmod(0o755)
  return stub, log


def _results_sh(stub, w, *tables, **env):
  return subprocess.run(["bash", str(ROOT / "docs/results.sh"), str(w), *tables], cwd=ROOT,
                        env=dict(os.environ, PY=str(stub), **env), capture_output=True,
                        text=True, timeout=120)


def test_results_script_runs_every_row_and_table(tmp_path):
  stub, log = _stub(tmp_path)
  w = tmp_path / "w"
  proc = _results_sh(stub, w)
  assert proc.returncode == 0, proc.stderr
  calls = log.read_text().splitlines()
  data = f"--config.data.data_dir={w}/data/tfds --config.data.manual_dir={w}/data/raw"
  rows = {r for _, _, rs in research.TABLES.values() for r in rs}
  assert rows == set(research.ROWS)  # Every row is in a table.
  for row in rows:
    line = (f"run.py --config=configs/research.py:{row} --mode=multiseed "
            f"--workdir={w}/rows/{row} {data}")
    assert line in calls, row
  for row in research.TUNED:
    assert (f"run.py --config=configs/research.py:tune_{row} --mode=sweep "
            f"--workdir={w}/tuned/{row} {data}") in calls
    assert os.readlink(w / "tuned_rows" / f"{row}_tuned") == f"{w}/tuned/{row}/confirm/trial_3"
    assert os.readlink(w / "tuned_rows" / f"{row}_default") == f"{w}/tuned/{row}/confirm/base"
  for table, (_, reference, table_rows) in research.TABLES.items():
    dirs = ",".join(f"{w}/rows/{r}" for r in table_rows)
    assert (w / "tables" / f"{table}.md").read_text() == (
        f"table of run.py --mode=compare --workdirs={dirs} --reference={w}/rows/{reference}\n")
  assert "--reference=" + str(w / "tuned_rows" / "mim_tuned") in (
      w / "tables" / "tuned.md").read_text()
  times = (w / "times.tsv").read_text().splitlines()
  assert len(times) == sum(len(rs) for _, _, rs in research.TABLES.values()) + len(
      research.TUNED)


def test_results_script_runs_the_real_tables_on_the_folders_given(tmp_path):
  stub, log = _stub(tmp_path)
  w = tmp_path / "w"
  missing = _results_sh(stub, w, "real_models")  # No folder given: stops, names the variable.
  assert missing.returncode != 0 and "MOSI_UTTERANCE" in missing.stderr
  assert not log.exists()
  folders = {"utterance": "/data/mosi utterance", "standard": "/data/mosi"}
  for seed in (0, 1, 2):  # The row ran seeds 0-2, seed 2 unfinished: seed 1 is reused.
    (w / "rows" / "real_mim" / f"seed_{seed}").mkdir(parents=True)
    if seed < 2:
      (w / "rows" / "real_mim" / f"seed_{seed}" / "results.json").write_text(f"{seed}")
  proc = _results_sh(stub, w, "real", SEEDS="3", MOSI_UTTERANCE=folders["utterance"],
                     MOSI_STANDARD=folders["standard"])
  assert proc.returncode == 0, proc.stderr
  calls = log.read_text().splitlines()
  for row in research.REAL_ROWS:
    data = f"--config.data.manual_dir={folders[research.data_of(row)]}"
    assert (f"run.py --config=configs/research.py:{row} --mode=multiseed "
            f"--workdir={w}/rows/{row} {data} --config.num_seeds=3") in calls, row
  for row in research.REAL_TUNED:
    assert (f"run.py --config=configs/research.py:tune_{row} --mode=sweep "
            f"--workdir={w}/tuned/{row} --config.data.manual_dir={folders['utterance']} "
            "--config.sweep.confirm_seeds=3") in calls  # SEEDS=3: confirmed over seeds 1-3.
  for table, (_, reference, rows) in research.REAL_TABLES.items():
    dirs = ",".join(f"{w}/rows/{r}" for r in rows)
    assert (w / "tables" / f"{table}.md").read_text() == (
        f"table of run.py --mode=compare --workdirs={dirs} --reference={w}/rows/{reference}\n")
  base = w / "tuned" / "real_mim" / "confirm" / "base"
  assert sorted(p.name for p in base.iterdir()) == ["seed_1"]  # Seed 0 is the search's.
  assert os.path.samefile(base / "seed_1" / "results.json",
                          w / "rows" / "real_mim" / "seed_1" / "results.json")
  assert "--reference=" + str(w / "tuned_rows" / "real_mim_tuned") in (
      w / "tables" / "real_tuned.md").read_text()
  assert not any("configs/research.py:mim " in c or "data/raw" in c for c in calls)
