"""Ensembles: each part of a multi-part score on its own channel and General MIDI program.

music21 writes every part of a score on channel 0, so one program would play them all; here each
part gets its own channel, and an instrument family (strings, winds, brass, piano with bass, or a
mixed chamber group) gives each part a program that suits its register, drawn per item.
"""

from __future__ import annotations

import mido
import numpy as np

from gan_stretch.data.render import DRUM_CHANNEL

# Chorales, string quartets, madrigals and motets: multi-part scores that convert in seconds.
ENSEMBLE_COMPOSERS = ("bach", "haydn", "mozart", "monteverdi", "palestrina")
# family -> GM programs for (the top part, the inner parts, the lowest part)
FAMILIES = {
    "strings": ((40, 48), (40, 41, 48, 49), (42, 43)),
    "winds": ((73, 68, 72, 74), (71, 68, 69, 65, 66), (70, 67)),
    "brass": ((56, 59), (60, 61, 57), (57, 58)),
    "piano-bass": ((0, 1, 2, 4, 6, 19), None, (32, 33, 34, 43)),  # None: the inner parts play the top's keyboard
    "mixed": ((40, 73, 68, 56, 71), (41, 71, 60, 69, 66, 48), (42, 70, 57, 43)),
}
CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)


def split_parts(midi: mido.MidiFile) -> tuple[mido.MidiFile, list[int]]:
    """A copy of ``midi`` with each track that plays notes on its own channel, and those channels
    ordered from the highest part to the lowest (by mean pitch). Scores with more parts than the
    15 melodic channels share channels from the 16th part on."""
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    register = {}
    for track in midi.tracks:
        pitches = [m.note for m in track if m.type == "note_on" and m.velocity > 0]
        if not pitches:
            out.tracks.append(track.copy())
            continue
        ch = CHANNELS[len(register) % len(CHANNELS)]
        register.setdefault(ch, []).extend(pitches)
        out.tracks.append(mido.MidiTrack(m.copy(channel=ch) if hasattr(m, "channel") else m.copy() for m in track))
    order = sorted(register, key=lambda c: -float(np.mean(register[c])))
    return out, order


def orchestrate(parts: list[int], rng: np.random.Generator) -> tuple[str, dict[int, int]]:
    """(family, channel -> program) for ``parts`` ordered from the top part down."""
    family = list(FAMILIES)[rng.integers(len(FAMILIES))]
    top, inner, low = FAMILIES[family]
    first = int(rng.choice(top))
    programs = {}
    for i, ch in enumerate(parts):
        if i > 0 and i == len(parts) - 1:
            programs[ch] = int(rng.choice(low))
        elif i == 0 or inner is None:  # the top part; with piano and bass, every part but the bass
            programs[ch] = first
        else:
            programs[ch] = int(rng.choice(inner))
    return family, programs
