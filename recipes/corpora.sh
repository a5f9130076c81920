#!/usr/bin/env bash
# Renders the training corpora of every family that are missing from DATA (the soundfonts TimGM6mb,
# FluidR3_GM and sf_GMbank only; every other sound bank is for evaluation), 8 s items at 22.05 kHz:
#   bash recipes/corpora.sh [DATA]
# DATA (data/train): classical excerpts on each training soundfont (timgm, fluidr3, sfgmbank: 40
# music21 pieces each), ensembles (ensemble: 60 multi-part scores, each part on its own GM program)
# and grooves (groove: 100 items of drums, bass, comping and lead); ensembles and grooves draw one of
# the three soundfonts per item, reverb and chorus per item and a level from -30 to -3 dBFS.
# Held-out pieces are never rendered here. Prints the wall time of each render and, last, the
# five folders as one comma-separated list (a recipe's data=).
set -euo pipefail
DATA=${1:-data/train}
PY=${PYTHON:-.venv/bin/python}
SOUNDFONTS=TimGM6mb.sf2,FluidR3_GM.sf2,sf_GMbank.sf2

render() {  # folder, then the options of `gan-stretch data midi`
    local out=$1 t0; shift
    [ -f "$out/manifest.json" ] && return
    t0=$(date +%s)
    $PY -m gan_stretch.cli data midi --out "$out" --seconds 8 --sample-rate 22050 "$@" >&2
    echo "$(($(date +%s) - t0)) s: rendered $out" >&2
}
render "$DATA/timgm" --family classical --pieces 40 --soundfont TimGM6mb.sf2
render "$DATA/fluidr3" --family classical --pieces 40 --soundfont FluidR3_GM.sf2
render "$DATA/sfgmbank" --family classical --pieces 40 --soundfont sf_GMbank.sf2
for family in ensemble groove; do
    pieces=$([ $family = groove ] && echo 100 || echo 60)
    render "$DATA/$family" --family $family --pieces $pieces --soundfont $SOUNDFONTS \
        --reverb random --chorus random --level-range -30 -3
done
echo "$DATA/timgm,$DATA/fluidr3,$DATA/sfgmbank,$DATA/ensemble,$DATA/groove"
