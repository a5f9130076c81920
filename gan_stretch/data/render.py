"""True-tempo renders: one MIDI performance synthesized at tempo 1 and at tempo r.

The same notes, truly played faster or slower (fluidsynth + a General MIDI soundfont). This is
ground truth no classical stretcher has.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from ..errors import GanStretchError

SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts")
PREFERRED_SOUNDFONTS = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2")
DRUM_CHANNEL = 9


def find_soundfont(name: str | None = None) -> Path:
    """A General MIDI soundfont: ``name`` may be a path or a file name in the usual folders."""
    if name and Path(name).is_file():
        return Path(name)
    candidates = [name] if name else list(PREFERRED_SOUNDFONTS)
    for folder in SOUNDFONT_DIRS:
        for cand in candidates:
            p = Path(folder) / cand
            if p.is_file():
                return p
    raise GanStretchError(f"no General MIDI soundfont found (looked for {', '.join(candidates)} in "
                          f"{', '.join(SOUNDFONT_DIRS)}); install timgm6mb-soundfont or pass a .sf2 path")


def music21_midi(source: str) -> mido.MidiFile:
    """A piece of the music21 corpus (e.g. 'bach/bwv66.6') as a MIDI file."""
    from music21 import corpus

    score = corpus.parse(source)
    with tempfile.TemporaryDirectory() as tmp:
        path = score.write("midi", Path(tmp) / "piece.mid")
        return mido.MidiFile(str(path))


def perform(midi: mido.MidiFile, program: int, seconds: float, rate: float) -> mido.MidiFile:
    """The first ``seconds`` (at tempo 1) of ``midi``, on GM ``program``, played ``rate`` times faster.

    Notes still sounding at the cut are released there, so every rate plays exactly the same notes.
    """
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    # Merge to one absolute-time list so the cut is the same moment in every track.
    elapsed, events, tempo_seen = 0.0, [], False
    tick, tempo = 0, 500000
    for msg in mido.merge_tracks(midi.tracks):
        if msg.time:
            elapsed += mido.tick2second(msg.time, midi.ticks_per_beat, tempo)
        tick += msg.time
        if elapsed >= seconds:
            break
        if msg.type == "set_tempo":
            tempo = msg.tempo
            tempo_seen = True
            events.append((tick, msg.copy(tempo=max(1, int(round(msg.tempo / rate))))))
        elif msg.type in ("note_on", "note_off", "control_change", "pitchwheel"):
            events.append((tick, msg))
    cut_tick = tick
    if elapsed >= seconds:  # the cut falls inside the last delta: put it at the exact time
        over = elapsed - seconds
        cut_tick = tick - int(round(mido.second2tick(over, midi.ticks_per_beat, tempo)))
    channels = sorted({m.channel for _, m in events if hasattr(m, "channel")}) or [0]
    head = [] if tempo_seen else [(0, mido.MetaMessage("set_tempo", tempo=int(round(500000 / rate))))]
    head += [(0, mido.Message("program_change", channel=c, program=program))
             for c in channels if c != DRUM_CHANNEL]
    tail = [(cut_tick, mido.Message("control_change", channel=c, control=123, value=0)) for c in channels]
    track = mido.MidiTrack()
    last = 0
    for t, msg in head + sorted(events, key=lambda e: e[0]) + tail:
        track.append(msg.copy(time=t - last))
        last = t
    out.tracks.append(track)
    return out


def note_onsets(midi: mido.MidiFile) -> tuple[list[float], list[float]]:
    """Note-on times in seconds (tempo changes followed) of a performance: (pitched notes, drum hits
    on the GM drum channel), each sorted. A render of ``midi`` starts its notes at these times."""
    pitched, drums, elapsed = [], [], 0.0
    for msg in midi:  # mido yields messages with delta times in seconds, tempo applied
        elapsed += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            (drums if msg.channel == DRUM_CHANNEL else pitched).append(round(elapsed, 5))
    return sorted(pitched), sorted(drums)


def render(midi: mido.MidiFile, soundfont: Path, sample_rate: int, n_samples: int) -> np.ndarray:
    """fluidsynth -> mono float32 [n_samples] (cut or zero-padded to exactly ``n_samples``)."""
    if shutil.which("fluidsynth") is None:
        raise GanStretchError("fluidsynth is not installed (apt-get install fluidsynth)")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.save(str(mid))
        cmd = ["fluidsynth", "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(sample_rate),
               "-F", str(wav), str(soundfont), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LANG": "C"})
        if proc.returncode != 0 or not wav.exists():
            raise GanStretchError(f"fluidsynth failed: {proc.stderr.strip() or proc.stdout.strip()}")
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    assert sr == sample_rate, (sr, sample_rate)
    mono = data.mean(axis=1)
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, len(mono))] = mono[:n_samples]
    return out
