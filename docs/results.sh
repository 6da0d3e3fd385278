#!/usr/bin/env bash
# Reproduces every table of docs/results.md: bash docs/results.sh WORKDIR [TABLE ...]
#
# The rows, tables and search budgets are configs/research.py's. Every command resumes:
# after an interruption, run the same line again and finished runs are read, not redone.
# Without TABLE: every table, then the tuned rows (sweeps). TABLE: any of
# configs/research.py's TABLES, or `tuned`. Tables go to WORKDIR/tables/NAME.md, the wall
# time of each command to WORKDIR/times.tsv, the machine to WORKDIR/hardware.txt.
set -euo pipefail
W=${1:?usage: bash docs/results.sh WORKDIR [TABLE ...]}
shift
PY=${PY:-.venv/bin/python}
DATA=(--config.data.data_dir="$W/data/tfds" --config.data.manual_dir="$W/data/raw")
mkdir -p "$W/tables"
{ date -u; nproc; lscpu 2>/dev/null | grep -m1 'Model name' || true; } > "$W/hardware.txt"

research() { "$PY" -c "from configs import research as r; print($1)"; }
TABLES=${*:-$(research "' '.join(r.TABLES)") tuned}

timed() {  # timed LABEL COMMAND...: runs it, appends "LABEL seconds" to times.tsv
  local label=$1 start=$SECONDS
  shift
  "$@"
  printf '%s\t%s\n' "$label" $((SECONDS - start)) >> "$W/times.tsv"
}

for table in $TABLES; do
  if [ "$table" = tuned ]; then
    dirs=()
    for row in $(research "' '.join(r.TUNED)"); do
      timed "tune_$row" "$PY" run.py --config="configs/research.py:tune_$row" --mode=sweep \
        --workdir="$W/tuned/$row" "${DATA[@]}"
      best=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['best']['number'])" \
        "$W/tuned/$row/sweep.json")
      mkdir -p "$W/tuned_rows"
      ln -sfn "$W/tuned/$row/confirm/trial_$best" "$W/tuned_rows/${row}_tuned"
      ln -sfn "$W/tuned/$row/confirm/base" "$W/tuned_rows/${row}_default"
      dirs+=("$W/tuned_rows/${row}_tuned" "$W/tuned_rows/${row}_default")
    done
    reference=$W/tuned_rows/mim_tuned
  else
    dirs=()
    for row in $(research "' '.join(r.TABLES['$table'][2])"); do
      timed "$row" "$PY" run.py --config="configs/research.py:$row" --mode=multiseed \
        --workdir="$W/rows/$row" "${DATA[@]}"
      dirs+=("$W/rows/$row")
    done
    reference=$W/rows/$(research "r.TABLES['$table'][1]")
  fi
  "$PY" run.py --mode=compare --workdirs="$(IFS=,; echo "${dirs[*]}")" \
    --reference="$reference" > "$W/tables/$table.md"
  echo "wrote $W/tables/$table.md"
done
