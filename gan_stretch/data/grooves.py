"""Generated band grooves: a General MIDI drum kit, bass, comping chords and a lead line.

``groove(seed, seconds)`` draws everything from one seed (style, tempo, swing, key, chord
progression, instruments, fills, humanised velocities and timing), so groove k is the same on
every machine. The MIDI is built at its own tempo ("tempo 1"); ``render.perform`` plays it
faster or slower by scaling the tempo only, like every other true-tempo render.

Patterns are written on a sixteenth-note grid, one character per step:
``X`` accent, ``x`` hit, ``g`` ghost note (played most of the time, softly), ``.`` rest.
A pattern of 32 steps spans two bars (the latin clave).
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

from gan_stretch.data.render import DRUM_CHANNEL

STYLES = ("pop", "rock", "funk", "latin")
BPM_RANGE = (70, 160)
BASS, COMP, LEAD = 0, 1, 2  # channels; the kit plays on DRUM_CHANNEL
TICKS = 480  # per beat
STEPS = 16  # per 4/4 bar

# GM percussion keys
KICK, STICK, SNARE, CLAP, FLOOR_TOM, HAT, PEDAL_HAT, LOW_TOM, OPEN_HAT, MID_TOM, HIGH_TOM = (
    36,
    37,
    38,
    39,
    41,
    42,
    44,
    45,
    46,
    47,
    50,
)
CRASH, RIDE, COWBELL, CONGA_MUTE, CONGA_OPEN, CONGA_LOW, CLAVES, SHAKER = 49, 51, 56, 62, 63, 64, 75, 82

VELOCITY = {"X": 112, "x": 92, "g": 44}

STYLE = {
    "pop": dict(
        drums={KICK: "X.....x.X.x.....", SNARE: "....X.......X...", HAT: "x.x.x.x.x.x.x.x."},
        bass="X.....x.X.x.....",
        comp="x...x...x...x...",
        swing_steps=2,
        legato=0.9,
        lead_density=0.45,
        bass_programs=(33, 34, 38),
        comp_programs=(0, 4, 5, 16, 24, 25),
    ),
    "rock": dict(
        drums={KICK: "X......xX.x.....", SNARE: "....X.......X...", RIDE: "x.x.x.x.x.x.x.x."},
        bass="x.x.x.x.x.x.x.x.",
        comp="X.x.x.x.X.x.x.x.",
        swing_steps=2,
        legato=0.8,
        lead_density=0.4,
        bass_programs=(33, 34, 35),
        comp_programs=(29, 30, 27, 18),
    ),
    "funk": dict(
        drums={
            KICK: "X..x..x...x..x..",
            SNARE: "....X..g.g..X..g",
            HAT: "xgxgxgxgxgxgxg.g",
            OPEN_HAT: "..............x.",
        },
        bass="X..x..x.x.x..xx.",
        comp="..x...x...x.x..x",
        swing_steps=1,
        legato=0.5,
        lead_density=0.35,
        bass_programs=(36, 37, 38, 39),
        comp_programs=(7, 27, 4, 16),
    ),
    "latin": dict(  # 3-2 son clave over two bars, conga tumbao, shaker
        drums={
            CLAVES: "x..x..x.....x.......x...x.......",
            KICK: "x..x....x..x....",
            CONGA_MUTE: "x.x...x.x.x...x.",
            CONGA_OPEN: "......x.......x.",
            SHAKER: "xgxgxgxgxgxgxgxg",
        },
        bass="X.....x.....x...",
        comp="x..x..x.x..x..x.",
        swing_steps=2,
        legato=0.85,
        lead_density=0.45,
        bass_programs=(32, 33),
        comp_programs=(0, 1, 4, 11, 24),
    ),
}
# dense rhythms (never drawn: ``groove(..., style="dense")``, the corpus family "dense-groove"):
# 16th-note hi-hats, 16th ghost notes on the snare and 16th snare rolls at 100 to 180 bpm, the
# attacks closer than a stretcher's frames once sped up
STYLE["dense"] = dict(
    drums={
        KICK: "X.....x...X..x..",
        SNARE: "..g.X..g.gg.X.gx",
        HAT: "XxxxXxxxXxxxXxxx",
    },
    bass="X.x...x.X.x..x..",
    comp="x..x..x...x..x..",
    swing_steps=2,
    legato=0.8,
    lead_density=0.5,
    bass_programs=(33, 34, 36, 38),
    comp_programs=(4, 5, 16, 24, 27, 30),
)
DENSE_BPM_RANGE = (100, 180)
LEAD_PROGRAMS = (11, 22, 26, 56, 64, 65, 66, 71, 73, 80, 81)
# Fills over the last two beats of a phrase (8 steps), played louder towards the end.
FILLS = (
    {SNARE: "xxxxxxxx"},
    {HIGH_TOM: "xx......", MID_TOM: "..xx....", LOW_TOM: "....xx..", FLOOR_TOM: "......xx"},
    {SNARE: "x.x.x.x.", KICK: "x...x..."},
    {SNARE: "xx..xx..", HIGH_TOM: "..x.....", MID_TOM: "......x.", FLOOR_TOM: ".......x"},
)
DENSE_FILLS = ({SNARE: "xxxxxxxx"}, {SNARE: "xxxx", HIGH_TOM: "....xx..", FLOOR_TOM: "......xx"})
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {  # scale degrees (0 = tonic), one chord per bar
    MAJOR: ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4)),
    MINOR: ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2)),
}


@dataclass(frozen=True)
class Note:
    step: int  # nominal sixteenth-note step from the start (before swing and humanising)
    start: float  # beats, swing and timing noise applied
    length: float  # beats
    channel: int
    pitch: int
    velocity: int


@dataclass
class Groove:
    seed: int
    style: str
    bpm: int
    swing: float  # 0 straight .. 1 full triplet feel
    key: int  # pitch class of the tonic
    minor: bool
    programs: dict  # channel -> GM program (the drum channel is absent: GM standard kit)
    notes: list

    def midi(self) -> mido.MidiFile:
        """Type-1 MIDI file, one track, at the groove's own tempo."""
        events = [(0, 0, mido.MetaMessage("set_tempo", tempo=int(round(60e6 / self.bpm))))]
        events += [(0, 1, mido.Message("program_change", channel=c, program=p)) for c, p in self.programs.items()]
        for n in self.notes:
            on = int(round(n.start * TICKS))
            off = max(on + 1, int(round((n.start + n.length) * TICKS)))
            # note-offs sort before note-ons at the same tick so a repeated note is re-struck
            events.append((on, 3, mido.Message("note_on", channel=n.channel, note=n.pitch, velocity=n.velocity)))
            events.append((off, 2, mido.Message("note_off", channel=n.channel, note=n.pitch, velocity=0)))
        track, last = mido.MidiTrack(), 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - last))
            last = tick
        out = mido.MidiFile(type=1, ticks_per_beat=TICKS)
        out.tracks.append(track)
        return out


def swung(step: int, swing: float, swing_steps: int) -> float:
    """Beat position of a grid step with swing: within each pair of ``swing_steps``-step units the
    off-beat moves from half way to up to two thirds of the pair (swing 1: a triplet feel)."""
    pair = 2 * swing_steps
    base, q = divmod(step, pair)
    q /= pair
    split = 0.5 + swing / 6
    pos = q / 0.5 * split if q < 0.5 else split + (q - 0.5) / 0.5 * (1 - split)
    return (base + pos) * pair / 4


def groove(
    seed: int, seconds: float, style: str | None = None, bpm: int | None = None, swing: float | None = None
) -> Groove:
    """A groove covering at least ``seconds`` at its tempo. ``style``/``bpm``/``swing`` override the
    drawn values without changing anything else the seed draws."""
    rng = np.random.default_rng(seed)
    drawn_style = STYLES[rng.integers(len(STYLES))]
    drawn_bpm = int(rng.integers(BPM_RANGE[0], BPM_RANGE[1] + 1))
    drawn_swing = 0.0 if rng.random() < 0.4 else float(round(rng.uniform(0.15, 0.7), 2))
    style = style or drawn_style
    if style == "dense" and not bpm:  # the same draw, spread over the dense range
        lo, hi = BPM_RANGE
        bpm = round(DENSE_BPM_RANGE[0] + (drawn_bpm - lo) * (DENSE_BPM_RANGE[1] - DENSE_BPM_RANGE[0]) / (hi - lo))
    bpm = int(bpm or drawn_bpm)
    swing = drawn_swing if swing is None else float(swing)
    s = STYLE[style]
    key, minor = int(rng.integers(12)), bool(rng.random() < 0.5)
    scale = MINOR if minor else MAJOR
    progression = PROGRESSIONS[scale][rng.integers(len(PROGRESSIONS[scale]))]
    programs = {
        BASS: int(rng.choice(s["bass_programs"])),
        COMP: int(rng.choice(s["comp_programs"])),
        LEAD: int(rng.choice(LEAD_PROGRAMS)),
    }
    phrase = 2 if bpm < 110 else 4  # bars; a fill ends every phrase
    bars = int(np.ceil(seconds * bpm / 60 / 4)) + 1  # one bar more: the excerpt ends mid-music
    score = _Score(rng, swing, s["swing_steps"], jitter=0.006 * bpm / 60)  # 6 ms of timing noise, in beats
    walk = int(rng.integers(2, 8))  # the lead's place on its two-octave pentatonic ladder
    for bar in range(bars):
        chord = _chord(progression[bar % len(progression)], key, scale, seventh=style == "funk")
        _drums(score, style, bar, phrase)
        _bass(score, style, bar, chord[0])
        _comp(score, style, bar, chord)
        walk = _lead(score, style, bar, phrase, key, minor, walk)
    return Groove(seed, style, bpm, swing, key, minor, programs, score.notes)


def _chord(degree: int, key: int, scale: tuple, seventh: bool) -> list[int]:
    """Pitch classes (root first) of the diatonic triad on ``degree`` of the scale, its seventh too where ``seventh``."""
    degrees = (degree, degree + 2, degree + 4, degree + 6) if seventh else (degree, degree + 2, degree + 4)
    return [(key + scale[k % 7]) % 12 for k in degrees]


class _Score:
    """The notes of a groove as its parts write them, on the sixteenth-note grid, with swing and
    humanising: timing noise (one draw per channel and step: a chord or a kick-and-hat hit stays
    together) and velocity noise, drawn from ``rng`` in the order the notes are written."""

    def __init__(self, rng: np.random.Generator, swing: float, swing_steps: int, jitter: float):
        self.rng, self.swing, self.swing_steps, self.jitter = rng, swing, swing_steps, jitter
        self.late: dict = {}  # (channel, step) -> timing noise
        self.notes: list[Note] = []

    def add(self, step, length_steps, channel, pitch, velocity, legato=1.0):
        """A note on grid ``step``, ``length_steps`` steps long of which ``legato`` sounds."""
        rng, jitter = self.rng, self.jitter
        if (channel, step) not in self.late:
            self.late[channel, step] = float(np.clip(rng.normal(0, jitter), -jitter, jitter))
        start = swung(step, self.swing, self.swing_steps) + self.late[channel, step]
        end = swung(step + length_steps, self.swing, self.swing_steps)
        vel = int(np.clip(round(velocity + rng.normal(0, 7)), 1, 127))
        self.notes.append(Note(step, max(0.0, start), max(0.05, (end - start) * legato), channel, pitch, vel))


def _drums(score: _Score, style: str, bar: int, phrase: int) -> None:
    """The kit in one bar: the style's patterns (ghost notes played 70% of the time), a fill over
    the last two beats of a phrase and a crash on the first beat of the next."""
    b0, s, rng = bar * STEPS, STYLE[style], score.rng
    fills = DENSE_FILLS if style == "dense" else FILLS
    fill = fills[rng.integers(len(fills))] if bar % phrase == phrase - 1 else None
    for drum, pattern in s["drums"].items():
        for k in range(STEPS):
            c = pattern[(b0 + k) % len(pattern)]
            if c == "." or (fill and k >= 8) or (c == "g" and rng.random() < 0.3):
                continue
            score.add(b0 + k, 0.4, DRUM_CHANNEL, drum, VELOCITY[c])
    if fill:
        for drum, pattern in fill.items():
            for k, c in enumerate(pattern):
                if c != ".":
                    score.add(b0 + 8 + k, 0.4, DRUM_CHANNEL, drum, VELOCITY[c] - 20 + 4 * k)
    if bar % phrase == 0 and bar > 0:
        score.add(b0, 1, DRUM_CHANNEL, CRASH, VELOCITY["X"])


def _bass(score: _Score, style: str, bar: int, root: int) -> None:
    """The bass in one bar: the chord's root, sometimes the fifth or the octave."""
    b0, s = bar * STEPS, STYLE[style]
    hits = [k for k in range(STEPS) if s["bass"][k] != "."]
    for i, k in enumerate(hits):
        length = (hits[i + 1] if i + 1 < len(hits) else STEPS) - k
        interval = 0 if i == 0 else int(score.rng.choice([0, 7, 12], p=[0.55, 0.3, 0.15]))
        score.add(b0 + k, length, BASS, 36 + root + interval, VELOCITY[s["bass"][k]], s["legato"])


def _comp(score: _Score, style: str, bar: int, chord: list[int]) -> None:
    """Comping in one bar: the chord in close position around middle C (power chords in rock)."""
    b0, s, root = bar * STEPS, STYLE[style], chord[0]
    voicing = [48 + root, 55 + root, 60 + root] if style == "rock" else sorted(55 + (p - 55) % 12 for p in chord)
    hits = [k for k in range(STEPS) if s["comp"][k] != "."]
    for i, k in enumerate(hits):
        length = (hits[i + 1] if i + 1 < len(hits) else STEPS) - k
        for p in voicing:
            score.add(b0 + k, length, COMP, p, VELOCITY[s["comp"][k]] - 16, s["legato"])


def _lead(score: _Score, style: str, bar: int, phrase: int, key: int, minor: bool, walk: int) -> int:
    """The lead in one bar: a random walk on the pentatonic scale from ``walk`` (its place on the
    ladder), eighth-note grid, a breath at phrase ends. -> where the walk ends."""
    b0, s, rng = bar * STEPS, STYLE[style], score.rng
    penta = [0, 3, 5, 7, 10] if minor else [0, 2, 4, 7, 9]
    ladder = [64 + key % 12 + 12 * o + p for o in range(2) for p in penta]
    pos = [
        k
        for k in range(0, STEPS, 2)
        if rng.random() < s["lead_density"] and not (bar % phrase == phrase - 1 and k >= 8)
    ]
    for i, k in enumerate(pos):
        walk = int(np.clip(walk + rng.integers(-2, 3), 0, len(ladder) - 1))
        length = min((pos[i + 1] if i + 1 < len(pos) else STEPS) - k, 8)
        score.add(b0 + k, length, LEAD, ladder[walk], 96, 0.9)
    return walk
