#!/usr/bin/env bash
# Trains the packaged models: the autoencoder, then the stretch mapper and the GAN on it.
#   bash recipes/default-model.sh DATA RUNS [ACCELERATE_CONFIG]
# DATA: a true-tempo corpus (gan-stretch data midi --out DATA --pieces 90 --seconds 8);
# RUNS: where the three runs go. On one H100 the whole script takes about 6 minutes (the shipped
# models: 56 training items of a 90-piece corpus). Shipped in float16 with
# gan_stretch.pipeline.save_model(..., half=True): RUNS/mapper/model.safetensors as
# gan_stretch/checkpoints/default.safetensors (the best measured) and RUNS/gan/model.safetensors
# as gan_stretch/checkpoints/gan.safetensors.
set -euo pipefail
DATA=${1:?corpus folder}
RUNS=${2:?runs folder}
CONFIG=${3:-recipes/accelerate/gpu.yaml}
A="${PYTHON:-python3} -m accelerate.commands.launch --config_file $CONFIG -m gan_stretch.train"
EXTRA=${EXTRA:-}  # e.g. EXTRA="eval_pieces=0" where librosa is missing; PYTHON=.venv/bin/python here

$A recipes/autoencoder.yaml data=$DATA run_dir=$RUNS/autoencoder steps=${AE_STEPS:-37700} batch_size=512 \
    lr=1e-3 lr_min_ratio=0.02 save_every=5000 eval_every=10000 $EXTRA
AE=$RUNS/autoencoder/model.safetensors
$A recipes/mapper.yaml data=$DATA run_dir=$RUNS/mapper autoencoder=$AE steps=${MAPPER_STEPS:-3650} \
    batch_size=64 save_every=2500 eval_every=5000 $EXTRA &
$A recipes/gan.yaml data=$DATA run_dir=$RUNS/gan autoencoder=$AE steps=${GAN_STEPS:-7300} batch_size=64 \
    window=128 channels=256 d_channels=256 warmup_steps=$(( ${GAN_STEPS:-7300} / 10 )) spec_frames=2048 save_every=5000 eval_every=5000 $EXTRA
wait
