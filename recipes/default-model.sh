#!/usr/bin/env bash
# Trains the packaged models on a CPU from the recipe files in recipes/default/ (about 20 minutes
# on 2 cores, deterministic for a seed):
#   bash recipes/default-model.sh DATA RUNS [ACCELERATE_CONFIG]
# DATA: a true-tempo corpus, made here when missing (40 music21 pieces, 8 s, TimGM6mb, varied GM
# programs; its held-out pieces are never trained on); RUNS: where the three runs go.
# Shipped in float16 (gan_stretch.model.save_model(..., half=True)): RUNS/generator/model.safetensors
# (the generator trained without adversarial terms: docs/results/adversarial/study.md) as
# gan_stretch/checkpoints/default.safetensors, RUNS/mapper/model.safetensors as mapper.safetensors.
# The packaged pair was trained on the autoencoder of the earlier default (the same recipe file),
# with AE=gan_stretch/checkpoints/default.safetensors in place of RUNS/autoencoder.
set -euo pipefail
DATA=${1:?corpus folder}
RUNS=${2:?runs folder}
CONFIG=${3:-recipes/accelerate/cpu.yaml}
PY=${PYTHON:-python3}
A="$PY -m accelerate.commands.launch --config_file $CONFIG -m gan_stretch.train"
EXTRA=${EXTRA:-}  # e.g. EXTRA="eval_pieces=0" where librosa is missing

[ -f "$DATA/manifest.json" ] || $PY -m gan_stretch.cli data midi --out "$DATA" --pieces 40 --seconds 8
$A recipes/default/autoencoder.yaml data=$DATA run_dir=$RUNS/autoencoder $EXTRA
AE=$RUNS/autoencoder/model.safetensors
$A recipes/default/mapper.yaml data=$DATA run_dir=$RUNS/mapper autoencoder=$AE $EXTRA
$A recipes/default/generator.yaml data=$DATA run_dir=$RUNS/generator autoencoder=$AE $EXTRA
