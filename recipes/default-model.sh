#!/usr/bin/env bash
# Trains the packaged models on a CPU from the recipe files in recipes/default/ (deterministic for a
# seed; about 25 minutes of training on 2 cores, plus rendering the corpora where missing):
#   bash recipes/default-model.sh [DATA] [RUNS] [ACCELERATE_CONFIG]
# DATA (data/train): the training corpora (recipes/corpora.sh renders what is missing): the
# autoencoder, the mapper and the classical generator train on DATA/timgm (40 music21 excerpts,
# 8 s, TimGM6mb; held-out pieces are never rendered), the last stage (finetune.yaml) tunes that
# generator on all five corpora (classical excerpts on three soundfonts, ensembles, grooves) and
# exports the weight average of the two. RUNS (runs/default): where the runs go.
# Shipped in float16 (gan_stretch.models.model_file.save_model(..., half=True)): RUNS/finetune/model.safetensors
# as gan_stretch/checkpoints/default.safetensors, RUNS/mapper/model.safetensors as mapper.safetensors.
# The packaged models were trained on the autoencoder of an earlier default (the same recipe file):
# AE=gan_stretch/checkpoints/default.safetensors in place of RUNS/autoencoder, the last stage from
# the classical generator of the previous packaged default (docs/results/training/finetune/).
set -euo pipefail
DATA=${1:-data/train}
RUNS=${2:-runs/default}
CONFIG=${3:-recipes/accelerate/cpu.yaml}
PY=${PYTHON:-python3}
A="$PY -m accelerate.commands.launch --config_file $CONFIG -m gan_stretch.train"
EXTRA=${EXTRA:-}  # e.g. EXTRA="eval_pieces=0" where librosa is missing

SETS=$(PYTHON=$PY bash "$(dirname "$0")/corpora.sh" "$DATA")
$A recipes/default/autoencoder.yaml data=$DATA/timgm run_dir=$RUNS/autoencoder $EXTRA
AE=$RUNS/autoencoder/model.safetensors
$A recipes/default/mapper.yaml data=$DATA/timgm run_dir=$RUNS/mapper autoencoder=$AE $EXTRA
$A recipes/default/generator.yaml data=$DATA/timgm run_dir=$RUNS/generator autoencoder=$AE $EXTRA
$A recipes/default/finetune.yaml data=$SETS run_dir=$RUNS/finetune autoencoder=$AE \
    init=$RUNS/generator/model.safetensors $EXTRA
