#!/usr/bin/env bash
# Evaluation sets: every family (classical, ensemble, groove) x sound banks never used in training
# (OPL-3 FM and MuseScore General Lite through fluidsynth, freepats through TiMidity++) x 22.05 and
# 44.1 kHz; held-out pieces only, with reverb, chorus and levels drawn per item as in training.
#
#   eval/make-evalsets.sh DIR
#
# writes DIR/<family>-<bank>-<rate>/ (one corpus each; a rerun reuses what is on disk) and prints
# the render time per item. Environment: ITEMS (8 per set), EXCERPT (10 s), EFFECTS (random: reverb
# and chorus per item; off for dry sets), LEVELS ("-30 -3" dBFS), PY (.venv/bin/python).
# Needs: fluidsynth opl3-soundfont musescore-general-soundfont-small timidity freepats (Debian).
set -euo pipefail
DIR=${1:?usage: eval/make-evalsets.sh DIR}
PY=${PY:-.venv/bin/python}
ITEMS=${ITEMS:-8}
EXCERPT=${EXCERPT:-10}
EFFECTS=${EFFECTS:-random}
LEVELS=${LEVELS:--30 -3}
POOL=$((ITEMS * 8))  # pieces scanned per set: about a quarter of them are held out

BANKS=(  # name synth bank
    "opl3 fluidsynth /usr/share/sounds/sf2/OPL-3_FM_128M.sf2"
    "musescore fluidsynth /usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
    "freepats timidity freepats"
)
for bank in "${BANKS[@]}"; do
    read -r name synth path <<<"$bank"
    command -v "$synth" >/dev/null || { echo "make-evalsets: $synth is not installed" >&2; exit 1; }
    [ "$synth" = timidity ] || [ -f "$path" ] || { echo "make-evalsets: $path is missing" >&2; exit 1; }
done

mkdir -p "$DIR"
printf "%-28s %6s %10s\n" set items "s/item"
for family in classical ensemble groove; do
    for bank in "${BANKS[@]}"; do
        read -r name synth path <<<"$bank"
        for sr in 22050 44100; do
            out="$DIR/$family-$name-$sr"
            start=$(date +%s.%N)
            # shellcheck disable=SC2086  # LEVELS is two numbers
            $PY -m gan_stretch.cli data midi --family "$family" --out "$out" --heldout-only \
                --pieces "$POOL" --items "$ITEMS" --seconds "$EXCERPT" --sample-rate "$sr" \
                --synth "$synth" --soundfont "$path" --reverb "$EFFECTS" --chorus "$EFFECTS" \
                --level-range $LEVELS >"$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
            $PY - "$out/manifest.json" "$start" "$(date +%s.%N)" "$family-$name-$sr" <<'PY'
import json, sys
n = len(json.load(open(sys.argv[1]))["items"])
print(f"{sys.argv[4]:<28} {n:6d} {(float(sys.argv[3]) - float(sys.argv[2])) / max(n, 1):10.1f}")
PY
        done
    done
done
