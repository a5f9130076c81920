"""True-tempo renders: one MIDI performance synthesized at tempo 1 and at tempo r.

The same notes, truly played faster or slower, by fluidsynth with a General MIDI soundfont or by
TiMidity++ with a patch set (a second engine whose timbres no soundfont shares). This is ground
truth no classical stretcher has.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from gan_stretch.errors import GanStretchError

SOUNDFONT_DIRS = (
    "/usr/share/sounds/sf2",
    "/usr/share/sounds/sf3",
    "/usr/share/soundfonts",
    "/usr/local/share/soundfonts",
)
PREFERRED_SOUNDFONTS = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2")
TIMIDITY_DIRS = ("/etc/timidity", "/usr/share/timidity")
SYNTHS = ("fluidsynth", "timidity")
DRUM_CHANNEL = 9
REVERB_SEND, CHORUS_SEND = 91, 93  # General MIDI effect-send controllers
# The loudest sample a render may reach: 16-bit FLAC clips at full scale.
CEILING_DB = -0.1


def find_soundfont(name: str | None = None, synth: str = "fluidsynth") -> Path:
    """The sound bank of ``synth``: a General MIDI soundfont (.sf2/.sf3) for fluidsynth, a
    configuration file (.cfg, e.g. ``freepats``) for TiMidity++. ``name`` may be a path, a file
    name in the usual folders, or a timidity configuration's stem."""
    if synth not in SYNTHS:
        raise GanStretchError(f"unknown synthesizer {synth!r}; choose one of {', '.join(SYNTHS)}")
    if synth == "timidity":
        folders, candidates = TIMIDITY_DIRS, [name or "freepats.cfg"]
        if not candidates[0].endswith(".cfg"):
            candidates.append(candidates[0] + ".cfg")
    else:
        folders, candidates = SOUNDFONT_DIRS, [name] if name else list(PREFERRED_SOUNDFONTS)
    if name and Path(name).is_file():
        path = Path(name)
    else:
        path = next((Path(f) / c for c in candidates for f in folders if (Path(f) / c).is_file()), None)
    if path is None:
        hint = (
            "install timidity and freepats, or pass a timidity .cfg"
            if synth == "timidity"
            else "install timgm6mb-soundfont or pass a .sf2/.sf3 path"
        )
        raise GanStretchError(
            f"no {'timidity configuration' if synth == 'timidity' else 'General MIDI soundfont'} "
            f"found (looked for {', '.join(candidates)} in {', '.join(folders)}); {hint}"
        )
    if (synth == "timidity") != (path.suffix == ".cfg"):
        raise GanStretchError(
            f"{path.name} is not a sound bank for {synth}: fluidsynth takes .sf2/.sf3 "
            "soundfonts, timidity a .cfg configuration"
        )
    return path


@functools.lru_cache(maxsize=8)
def music21_midi(source: str) -> mido.MidiFile:
    """A piece of the music21 corpus (e.g. 'bach/bwv66.6') as a MIDI file (cached: parsing takes
    seconds, and several items may orchestrate the same piece; callers must not modify it)."""
    from music21 import corpus

    score = corpus.parse(source)
    with tempfile.TemporaryDirectory() as tmp:
        path = score.write("midi", Path(tmp) / "piece.mid")
        return mido.MidiFile(str(path))


def perform(
    midi: mido.MidiFile,
    program: int | Mapping[int, int],
    seconds: float,
    rate: float,
    controls: Mapping[int, int] | None = None,
) -> mido.MidiFile:
    """The first ``seconds`` (at tempo 1) of ``midi``, played ``rate`` times faster.

    ``program`` is one GM program for every channel or a map channel -> program (the drum
    channel 9 keeps its kit either way); ``controls`` maps controller numbers to values set on
    every channel at the start (e.g. the reverb and chorus sends). Notes still sounding at the cut
    are released there, so every rate plays exactly the same notes. Only tempo events change with
    ``rate``: every note keeps its tick, so an onset at t seconds moves to t / rate.
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
    programs = program if isinstance(program, Mapping) else dict.fromkeys(channels, program)
    head = [] if tempo_seen else [(0, mido.MetaMessage("set_tempo", tempo=int(round(500000 / rate))))]
    head += [
        (0, mido.Message("program_change", channel=c, program=int(programs.get(c, 0))))
        for c in channels
        if c != DRUM_CHANNEL
    ]
    head += [
        (0, mido.Message("control_change", channel=c, control=int(k), value=int(v)))
        for c in channels
        for k, v in (controls or {}).items()
    ]
    tail = [(cut_tick, mido.Message("control_change", channel=c, control=123, value=0)) for c in channels]
    track = mido.MidiTrack()
    last = 0
    for t, msg in head + sorted(events, key=lambda e: e[0]) + tail:
        track.append(msg.copy(time=t - last))
        last = t
    out.tracks.append(track)
    return out


def transpose(midi: mido.MidiFile, semitones: int, drums: bool = True) -> tuple[mido.MidiFile, int]:
    """``midi`` with every pitched note moved by ``semitones`` (the drum channel keeps its kit, as
    a transposed performance keeps its drums; ``drums=False`` leaves the drums out): the true pitch
    shift of a performance. Notes moved outside MIDI's 0-127 are left out. -> (the transposed copy,
    pitched notes left out)."""
    if int(semitones) != semitones:
        raise GanStretchError(f"a MIDI transposition moves whole semitones, got {semitones}")
    out = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    dropped = 0
    for track in midi.tracks:
        new, carried = mido.MidiTrack(), 0  # the delta time of a left-out note goes to the next event
        for msg in track:
            if not drums and msg.type in ("note_on", "note_off") and msg.channel == DRUM_CHANNEL:
                carried += msg.time
                continue
            if msg.type in ("note_on", "note_off") and msg.channel != DRUM_CHANNEL:
                note = msg.note + int(semitones)
                if not 0 <= note <= 127:
                    dropped += msg.type == "note_on" and msg.velocity > 0
                    carried += msg.time
                    continue
                msg = msg.copy(note=note)
            new.append(msg.copy(time=msg.time + carried))
            carried = 0
        if carried:  # left-out notes at the end: the track still lasts as long
            new.append(mido.MetaMessage("end_of_track", time=carried))
        out.tracks.append(new)
    return out, dropped


def note_onsets(midi: mido.MidiFile) -> tuple[list[float], list[float]]:
    """Note-on times in seconds (tempo changes followed) of a performance: (pitched notes, drum hits
    on the GM drum channel), each sorted. A render of ``midi`` starts its notes at these times."""
    pitched, drums, elapsed = [], [], 0.0
    for msg in midi:  # mido yields messages with delta times in seconds, tempo applied
        elapsed += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            (drums if msg.channel == DRUM_CHANNEL else pitched).append(round(elapsed, 5))
    return sorted(pitched), sorted(drums)


def note_channels(midi: mido.MidiFile) -> list[int]:
    """The channels that play notes."""
    return sorted({m.channel for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0})


def _cfg_entries(cfg: Path, seen=None) -> tuple[dict, dict]:
    """(program -> patch spec of tone bank 0, note -> patch spec of drum set 0) of a timidity
    configuration, following its ``source`` lines."""
    seen = seen if seen is not None else set()
    tones, drums, section = {}, {}, None
    if cfg in seen:
        return tones, drums
    seen.add(cfg)
    for line in cfg.read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "source" and len(words) > 1:
            t, d = _cfg_entries((cfg.parent / words[1]).resolve(), seen)
            tones.update(t)
            drums.update(d)
        elif words[0] in ("bank", "drumset") and len(words) > 1:
            section = (words[0], words[1])
        elif words[0].isdigit() and len(words) > 1 and section in (("bank", "0"), ("drumset", "0")):
            (tones if section[0] == "bank" else drums)[int(words[0])] = " ".join(words[1:])
    return tones, drums


def timidity_config(cfg: Path, folder: Path) -> Path:
    """A configuration (written in ``folder``) that reads ``cfg`` and gives every General MIDI
    program and drum key it lacks the nearest one it has (same GM family first).

    Without it timidity plays what ``cfg`` lacks from its system configuration, which is usually
    a training soundfont (Debian: FluidR3_GM): an evaluation set would hear trained timbres."""
    tones, drums = _cfg_entries(cfg.resolve())
    if not tones:
        raise GanStretchError(f"{cfg} defines no instruments in tone bank 0")
    lines = [f"source {cfg.resolve()}", "bank 0"]
    for p in range(128):
        if p not in tones:
            near = min(tones, key=lambda q: (q // 8 != p // 8, abs(q - p)))
            lines.append(f"{p} {tones[near]}")
    if drums:
        lines.append("drumset 0")
        lines += [f"{k} {drums[min(drums, key=lambda q: abs(q - k))]}" for k in range(35, 82) if k not in drums]
    out = folder / "complete.cfg"
    out.write_text("\n".join(lines) + "\n")
    return out


def render(
    midi: mido.MidiFile,
    soundfont: Path,
    sample_rate: int,
    n_samples: int,
    synth: str = "fluidsynth",
    reverb: bool = False,
    chorus: bool = False,
    room_size: float = 0.2,
) -> np.ndarray:
    """fluidsynth or timidity -> mono float32 [n_samples] (cut or zero-padded to exactly ``n_samples``).

    ``reverb``/``chorus`` switch the engine's effect units on; how much each channel sends to them
    is the MIDI file's controllers 91/93 (``perform(controls=...)``). Reverb tails ring in seconds,
    not beats: the rate-r render is the same room with the performance played faster.
    """
    if shutil.which(synth) is None:
        pkg = "timidity freepats" if synth == "timidity" else "fluidsynth"
        raise GanStretchError(f"{synth} is not installed (apt-get install {pkg})")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.save(str(mid))
        if synth == "fluidsynth":
            cmd = _fluidsynth_command(mid, wav, soundfont, sample_rate, reverb, chorus, room_size)
        else:
            cmd = _timidity_command(mid, wav, timidity_config(Path(soundfont), Path(tmp)), sample_rate, reverb, chorus)
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LANG": "C"})
        if proc.returncode != 0 or not wav.exists():
            raise GanStretchError(f"{synth} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise GanStretchError(f"{synth} rendered at {sr} Hz instead of {sample_rate} Hz")
    mono = data.mean(axis=1)
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, len(mono))] = mono[:n_samples]
    return out


def _fluidsynth_command(
    mid: Path, wav: Path, soundfont: Path, sample_rate: int, reverb: bool, chorus: bool, room_size: float
) -> list[str]:
    """The fluidsynth command line that renders ``mid`` into ``wav``.

    Float output: several parts together may exceed full scale; levels are set afterwards.
    Dynamic sample loading reads only the presets the piece uses (10x faster start with large
    soundfonts; the same output)."""
    return [
        "fluidsynth",
        "-n",
        "-i",
        "-q",
        "-R",
        str(int(reverb)),
        "-C",
        str(int(chorus)),
        "-g",
        "0.5",
        "-o",
        "synth.dynamic-sample-loading=1",
        "-o",
        f"synth.reverb.room-size={room_size:.3f}",
        "-O",
        "float",
        "-r",
        str(sample_rate),
        "-F",
        str(wav),
        str(soundfont),
        str(mid),
    ]


def _timidity_command(mid: Path, wav: Path, cfg: Path, sample_rate: int, reverb: bool, chorus: bool) -> list[str]:
    """The timidity command line that renders ``mid`` into ``wav`` with the configuration ``cfg``.

    --preserve-silence: timidity otherwise skips to the first note, which would move every onset
    of a piece that starts with a rest."""
    return [
        "timidity",
        "-c",
        str(cfg),
        "-Ow",
        "-s",
        str(sample_rate),
        "-o",
        str(wav),
        "--preserve-silence",
        f"-EFreverb={'f' if reverb else 'd'}",
        f"-EFchorus={'n' if chorus else 'd'}",
        str(mid),
    ]


def peak_db(wave: np.ndarray) -> float:
    return float(20 * np.log10(max(float(np.abs(wave).max()), 1e-10)))


def normalise(waves: Mapping[float, np.ndarray], level_db: float | None) -> tuple[dict, float]:
    """One gain for every rate of an item: the rate-1 render peaks at ``level_db`` dBFS (None keeps
    the engine's level), lowered where any rate would pass ``CEILING_DB`` (the pair stays
    consistent: the same performance, the same gain). -> (waves, gain)."""
    peaks = {r: float(np.abs(w).max()) for r, w in waves.items()}
    gain = 1.0 if level_db is None or peaks[1.0] <= 0 else 10 ** (level_db / 20) / peaks[1.0]
    loudest = max(peaks.values())
    if loudest * gain > 10 ** (CEILING_DB / 20):
        gain = 10 ** (CEILING_DB / 20) / loudest
    return {r: (w * gain).astype(np.float32) for r, w in waves.items()}, gain
