#!/usr/bin/env bash
# Trains the generator and the mapper of recipes/scale/ on every training corpus family, rendering
# the corpora that are missing (the soundfonts TimGM6mb, FluidR3_GM and sf_GMbank only; every
# other sound bank is for evaluation):
#   bash recipes/scale-model.sh [DATA] [RUNS] [ACCELERATE_CONFIG]
# DATA (data/train): classical excerpts on each training soundfont (timgm, fluidr3, sfgmbank:
# 40 music21 pieces each, 8 s), ensembles (ensemble: multi-part scores, each part on its own GM
# program) and grooves (groove: drums, bass, comping and lead); ensembles and grooves draw one of
# the three soundfonts per item, reverb and chorus per item and a level from -30 to -3 dBFS.
# Held-out pieces are never rendered here. Each run resumes from its last checkpoint when
# interrupted, so the whole may span sessions. Prints the wall time of each step.
set -euo pipefail
DATA=${1:-data/train}
RUNS=${2:-runs/scale}
CONFIG=${3:-recipes/accelerate/cpu.yaml}
PY=${PYTHON:-.venv/bin/python}
A="$PY -m accelerate.commands.launch --config_file $CONFIG -m gan_stretch.train"
EXTRA=${EXTRA:-}
SOUNDFONTS=TimGM6mb.sf2,FluidR3_GM.sf2,sf_GMbank.sf2
timed() { local t0; t0=$(date +%s); "$@"; echo "$(($(date +%s) - t0)) s: $*" >&2; }

render() {  # folder, then the options of `gan-stretch data midi`
    local out=$1; shift
    [ -f "$out/manifest.json" ] || timed $PY -m gan_stretch.cli data midi --out "$out" --seconds 8 --sample-rate 22050 "$@"
}
render "$DATA/timgm" --family classical --pieces 40 --soundfont TimGM6mb.sf2
render "$DATA/fluidr3" --family classical --pieces 40 --soundfont FluidR3_GM.sf2
render "$DATA/sfgmbank" --family classical --pieces 40 --soundfont sf_GMbank.sf2
for family in ensemble groove; do
    pieces=$([ $family = groove ] && echo 100 || echo 60)
    render "$DATA/$family" --family $family --pieces $pieces --soundfont $SOUNDFONTS \
        --reverb random --chorus random --level-range -30 -3
done
SETS=$DATA/timgm,$DATA/fluidr3,$DATA/sfgmbank,$DATA/ensemble,$DATA/groove
timed $A recipes/scale/generator.yaml data=$SETS run_dir=$RUNS/generator $EXTRA
timed $A recipes/scale/mapper.yaml data=$SETS run_dir=$RUNS/mapper $EXTRA
