#!/usr/bin/env bash
# Trains the generator and the mapper of recipes/scale/ from scratch on every training corpus
# family, rendering the corpora that are missing (recipes/corpora.sh):
#   bash recipes/scale-model.sh [DATA] [RUNS] [ACCELERATE_CONFIG]
# DATA (data/train): the corpora's folder (recipes/corpora.sh says what each holds). Each run
# resumes from its last checkpoint when interrupted, so the whole may span sessions. Prints the
# wall time of each step.
set -euo pipefail
DATA=${1:-data/train}
RUNS=${2:-runs/scale}
CONFIG=${3:-recipes/accelerate/cpu.yaml}
PY=${PYTHON:-.venv/bin/python}
A="$PY -m accelerate.commands.launch --config_file $CONFIG -m gan_stretch.train"
EXTRA=${EXTRA:-}
timed() { local t0; t0=$(date +%s); "$@"; echo "$(($(date +%s) - t0)) s: $*" >&2; }

SETS=$(PYTHON=$PY bash "$(dirname "$0")/corpora.sh" "$DATA")
timed $A recipes/scale/generator.yaml data=$SETS run_dir=$RUNS/generator $EXTRA
timed $A recipes/scale/mapper.yaml data=$SETS run_dir=$RUNS/mapper $EXTRA
