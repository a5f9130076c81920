#!/usr/bin/env bash
# A larger autoencoder + mapper + GAN (256-channel generator, 37,700 autoencoder steps) for a GPU:
#   bash recipes/large-gpu-model.sh DATA RUNS [ACCELERATE_CONFIG]
# DATA: a true-tempo corpus (gan-stretch data midi --out DATA --pieces 90 --seconds 8);
# RUNS: where the three runs go. On one H100 the whole script takes about 6 minutes. With residual
# decoding these models measured worse than the small CPU-trained default (recipes/default-model.sh)
# on every soundfont: the large generator learns the training timbres (README, "Measured results").
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
