#!/usr/bin/env bash
# Reproduces every table of docs/results.md: bash docs/results.sh WORKDIR [TABLE ...]
#
# The rows, tables and search budgets are configs/research.py's. Every command resumes:
# after an interruption, run the same line again and finished runs are read, not redone.
# Without TABLE: every synthetic table, then the tuned rows (sweeps). TABLE: any of
# configs/research.py's TABLES or REAL_TABLES, `tuned` (the synthetic sweeps),
# `real_tuned` (the real ones), or `real` (every real table, then real_tuned).
# Real-data rows read their files from folders given by two variables:
#   MOSI_UTTERANCE  label.csv (its own split) and the utterance-level .csd files
#   MOSI_STANDARD   label.csv on the standard folds
# e.g. MOSI_UTTERANCE=~/mosi_utterance bash docs/results.sh W real_models
# Tables go to WORKDIR/tables/NAME.md, the wall time of each command to
# WORKDIR/times.tsv, the machine to WORKDIR/hardware.txt. SEEDS=N runs the first N seeds
# of every row now, and confirms each sweep over seeds 1 to N (a later run with more
# extends the same workdirs and studies).
set -euo pipefail
W=${1:?usage: bash docs/results.sh WORKDIR [TABLE ...]}
shift
PY=${PY:-.venv/bin/python}
mkdir -p "$W/tables"
{ date -u; nproc; lscpu 2>/dev/null | grep -m1 'Model name' || true; } > "$W/hardware.txt"

research() { "$PY" -c "from configs import research as r; print($1)"; }
TABLES=()
for t in ${*:-$(research "' '.join(r.TABLES)") tuned}; do
  if [ "$t" = real ]; then TABLES+=($(research "' '.join(r.REAL_TABLES)") real_tuned)
  else TABLES+=("$t"); fi
done
EXTRA=() CONFIRM=()
[ -n "${SEEDS:-}" ] && EXTRA=(--config.num_seeds="$SEEDS") CONFIRM=(--config.sweep.confirm_seeds="$SEEDS")

data_args() {  # data_args ROW: sets DATA to the row's data flags
  case $(research "r.data_of('$1')") in
    synthetic) DATA=(--config.data.data_dir="$W/data/tfds" --config.data.manual_dir="$W/data/raw");;
    utterance) DATA=(--config.data.manual_dir="${MOSI_UTTERANCE:?set MOSI_UTTERANCE to the utterance-level MOSI files for row $1}");;
    standard) DATA=(--config.data.manual_dir="${MOSI_STANDARD:?set MOSI_STANDARD to the folder of label.csv on the standard folds for row $1}");;
  esac
}

reuse_row_seeds() {  # reuse_row_seeds ROW: the untuned confirmation's seeds the row already ran
  # The confirmation's "base" is the row's own config over seeds 1 to 5: a seed the row
  # finished is the same run (same config and seed, deterministic on CPU), so it is
  # linked in, not trained again. Hard links: nothing is copied, the row keeps its own.
  local row=$1 src dst
  for src in "$W/rows/$row"/seed_*; do
    dst=$W/tuned/$row/confirm/base/${src##*/}
    if [ "${src##*/}" != seed_0 ] && [ -f "$src/results.json" ] && [ ! -e "$dst" ]; then
      mkdir -p "${dst%/*}"
      cp -al "$src" "$dst"
      rm -f "$dst/workdir.lock"
    fi
  done
}

timed() {  # timed LABEL COMMAND...: runs it, appends "LABEL seconds" to times.tsv
  local label=$1 start=$SECONDS
  shift
  "$@"
  printf '%s\t%s\n' "$label" $((SECONDS - start)) >> "$W/times.tsv"
}

for table in "${TABLES[@]}"; do
  if [ "$table" = tuned ] || [ "$table" = real_tuned ]; then
    dirs=()
    rows=$(research "' '.join(r.${table^^})")  # tuned: TUNED, real_tuned: REAL_TUNED
    for row in $rows; do
      data_args "$row"
      reuse_row_seeds "$row"
      timed "tune_$row" "$PY" run.py --config="configs/research.py:tune_$row" --mode=sweep \
        --workdir="$W/tuned/$row" "${DATA[@]}" ${CONFIRM[@]+"${CONFIRM[@]}"}
      best=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['best']['number'])" \
        "$W/tuned/$row/sweep.json")
      mkdir -p "$W/tuned_rows"
      ln -sfn "$W/tuned/$row/confirm/trial_$best" "$W/tuned_rows/${row}_tuned"
      ln -sfn "$W/tuned/$row/confirm/base" "$W/tuned_rows/${row}_default"
      dirs+=("$W/tuned_rows/${row}_tuned" "$W/tuned_rows/${row}_default")
    done
    reference=$W/tuned_rows/${rows%% *}_tuned
  else
    dirs=()
    for row in $(research "' '.join(r.tables()['$table'][2])"); do
      data_args "$row"
      timed "$row" "$PY" run.py --config="configs/research.py:$row" --mode=multiseed \
        --workdir="$W/rows/$row" "${DATA[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
      dirs+=("$W/rows/$row")
    done
    reference=$W/rows/$(research "r.tables()['$table'][1]")
  fi
  "$PY" run.py --mode=compare --workdirs="$(IFS=,; echo "${dirs[*]}")" \
    --reference="$reference" > "$W/tables/$table.md"
  echo "wrote $W/tables/$table.md"
done
