#!/usr/bin/env bash
# A larger autoencoder + mapper + GAN (256-channel generator, 37,700 autoencoder steps) for a GPU,
# from the recipe files in recipes/large-gpu/:
#   bash recipes/large-gpu-model.sh DATA RUNS [ACCELERATE_CONFIG]
# DATA: a true-tempo corpus (gan-stretch data midi --out DATA --pieces 90 --seconds 8);
# RUNS: where the three runs go. On one H100 the whole script takes about 6 minutes. With residual
# decoding these models measured worse than the small CPU-trained default (recipes/default-model.sh)
# on every soundfont: the large generator learns the training timbres (README, "Measured results").
# AE_STEPS, MAPPER_STEPS, GAN_STEPS override the files' step counts (the GAN's warm-up stays a tenth).
set -euo pipefail
DATA=${1:?corpus folder}
RUNS=${2:?runs folder}
CONFIG=${3:-recipes/accelerate/gpu.yaml}
A="${PYTHON:-python3} -m accelerate.commands.launch --config_file $CONFIG -m gan_stretch.train"
EXTRA=${EXTRA:-}  # e.g. EXTRA="eval_pieces=0" where librosa is missing; PYTHON=.venv/bin/python here

$A recipes/large-gpu/autoencoder.yaml data=$DATA run_dir=$RUNS/autoencoder ${AE_STEPS:+steps=$AE_STEPS} $EXTRA
AE=$RUNS/autoencoder/model.safetensors
$A recipes/large-gpu/mapper.yaml data=$DATA run_dir=$RUNS/mapper autoencoder=$AE \
    ${MAPPER_STEPS:+steps=$MAPPER_STEPS} $EXTRA &
$A recipes/large-gpu/gan.yaml data=$DATA run_dir=$RUNS/gan autoencoder=$AE \
    ${GAN_STEPS:+steps=$GAN_STEPS warmup_steps=$(( GAN_STEPS / 10 ))} $EXTRA
wait
