"""The items of a true-tempo corpus: which pieces, their seeds and render choices, and one item
rendered at every rate (in a worker process). ``corpus.build_true_tempo`` runs them."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from gan_stretch.data.manifest import rate_key, write_audio

# General MIDI programs with varied timbres: pianos, mallets, organ, guitars, bass, strings,
# choir, brass, reeds, pipes, synth lead and pad.
DEFAULT_PROGRAMS = (0, 4, 6, 11, 19, 24, 26, 32, 40, 48, 52, 56, 61, 65, 68, 71, 73, 80, 89)
COMPOSERS = ("bach", "monteverdi", "palestrina", "trecento", "josquin")  # quick to parse


def corpus_sources(n: int, composers=COMPOSERS) -> list[str]:
    """``n`` music21 corpus pieces, taken round-robin from ``composers`` in a fixed order."""
    from music21 import corpus

    # getComposer returns resolved paths; resolve the corpus root too, or a music21 reached through
    # a symlink (a linked virtualenv, a linked home) turns every piece into '../../..' and the
    # corpus ends up empty
    lists = []
    for c in composers:
        paths = sorted(
            str(Path(p).resolve()) for p in corpus.getComposer(c) if str(p).endswith((".mxl", ".xml", ".krn", ".mid"))
        )
        lists.append(paths)
    out, i = [], 0
    while len(out) < n and any(i < len(l) for l in lists):
        for l in lists:
            if i < len(l) and len(out) < n:
                out.append(l[i])
        i += 1
    root = os.path.realpath(Path(corpus.__file__).parent)  # real paths: the environment may be a symlink
    return [os.path.relpath(os.path.realpath(p), root).replace(os.sep, "/") for p in out]


FAMILIES = ("classical", "ensemble", "groove", "dense-groove")
EFFECTS = ("off", "on", "random")


def item_seed(seed: int, key: str) -> int:
    """The seed of one item: stable across machines and Python versions (crc32, not hash())."""
    return zlib.crc32(f"{seed}:{key}".encode())


def choose_render(
    seed: int, soundfonts, reverb: str = "off", chorus: str = "off", level_range: tuple[float, float] | None = None
) -> dict:
    """How one item sounds, drawn from its ``seed``: a sound bank from ``soundfonts``, reverb and
    chorus (``off``/``on``/``random``) with their send levels and room size, and a peak level in
    ``level_range`` dBFS (0.1 dB steps; None keeps the engine's level)."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own: render choices never change the notes
    bank = soundfonts[rng.integers(len(soundfonts))]
    on = {
        name: mode == "on" or (mode == "random" and bool(rng.random() < 0.5))
        for name, mode in (("reverb", reverb), ("chorus", chorus))
    }
    sends = {
        "reverb_send": int(rng.integers(40, 111)),
        "room_size": round(float(rng.uniform(0.4, 0.9)), 2),
        "chorus_send": int(rng.integers(40, 111)),
    }
    level = None if level_range is None else round(float(rng.uniform(*level_range)), 1)
    effects = {k: v for k, v in sends.items() if on["chorus" if k.startswith("chorus") else "reverb"]}
    return {"soundfont": bank, **on, "effects": effects, "level": level}


def render_suffix(choice: dict, seed: int) -> str:
    """Id suffix naming what the render choices changed (none: today's ids stay valid)."""
    return (
        f"-{Path(choice['soundfont']).stem}"
        + ("-rev" if choice["reverb"] else "")
        + ("-cho" if choice["chorus"] else "")
        + (f"-L{choice['level']:+.1f}" if choice["level"] is not None else "")
        + (f"-s{seed}" if seed else "")
    )


@dataclass
class Job:
    """One item to render; plain data, so that a worker process can take it."""

    key: str  # the piece: one piece is held out in every family and orchestration
    stem: str  # item id before the render suffix
    source: str
    seed: int
    family: str
    piece: str  # music21 path (classical, ensemble); empty for grooves
    seconds: float
    program: int | None = None  # classical: the GM program of every part


def _make(job: Job):
    """(MIDI at tempo 1, program or channel -> program, extra manifest fields) of ``job``."""
    from gan_stretch.data.render import music21_midi

    if job.family in ("groove", "dense-groove"):
        from gan_stretch.data.grooves import groove

        g = groove(job.seed, job.seconds, style="dense" if job.family == "dense-groove" else None)
        return (
            g.midi(),
            g.programs,
            {"groove": {"style": g.style, "bpm": g.bpm, "swing": g.swing, "key": g.key, "minor": g.minor}},
        )
    if job.family == "ensemble":
        from gan_stretch.data.ensembles import orchestrate, split_parts

        midi, parts = split_parts(music21_midi(job.piece))
        name, prog = orchestrate(parts, np.random.default_rng([job.seed, 2]))
        return midi, prog, {"ensemble": name}
    return music21_midi(job.piece), job.program, {"program": job.program}


def plan_jobs(
    family: str, pieces: int, programs, programs_per_piece: int, composers, seconds: float, seed: int
) -> list[Job]:
    if family in ("groove", "dense-groove"):
        return [
            Job(
                f"{family}-{k}",
                f"{family}-{k:04d}",
                f"{family}:{k}",
                item_seed(seed, f"{family}-{k}"),
                family,
                "",
                seconds,
            )
            for k in range(pieces)
        ]
    if family == "ensemble":
        from gan_stretch.data.ensembles import ENSEMBLE_COMPOSERS

        sources = corpus_sources(pieces, composers or ENSEMBLE_COMPOSERS)
        return [
            Job(src, f"{_piece_name(src)}-e{k}", f"music21:{src}", item_seed(seed, f"{src}#e{k}"), family, src, seconds)
            for src in sources
            for k in range(programs_per_piece)
        ]
    sources = corpus_sources(pieces, composers or COMPOSERS)
    jobs = []
    for i, src in enumerate(sources):
        for k in range(programs_per_piece):
            program = programs[(i * programs_per_piece + k) % len(programs)]
            jobs.append(
                Job(
                    src,
                    f"{_piece_name(src)}-p{program}",
                    f"music21:{src}",
                    item_seed(seed, f"{src}#p{program}"),
                    family,
                    src,
                    seconds,
                    program,
                )
            )
    return jobs


def _piece_name(src: str) -> str:
    return Path(src).with_suffix("").as_posix().replace("/", "-")


@dataclass
class RenderTask:
    root: Path
    job: Job
    item: dict  # the manifest entry so far: id, split, choices, audio paths
    choice: dict  # render choices (choose_render)
    old: dict | None  # the item's entry in the manifest on disk, if any
    rates: list[float]  # 1 and every rate
    sample_rate: int
    synth: str


def render_item(task: RenderTask) -> dict:
    """Renders one item at every rate unless its renders are on disk; returns its manifest entry,
    or ``{"skip": why, "message": line}`` for a piece that cannot be used. Runs in a worker process."""
    from gan_stretch.data.render import peak_db

    root, job, item, old = task.root, task.job, dict(task.item), task.old
    audio = item["audio"]
    rendered = old is not None and all((root / p).is_file() for p in audio.values())
    if rendered and "onsets" in old:
        item.update({k: v for k, v in old.items() if k not in item and k != "peak_db"})
    else:
        try:
            midi, program, extra = _make(job)
        except Exception as e:  # music21 raises many types on pieces it cannot convert
            return {
                "skip": f"music21 cannot convert them ({type(e).__name__}: {e})"[:200],
                "message": f"skipping {job.source}: cannot convert it ({type(e).__name__})",
            }
        perf = _perform(midi, program, task)
        item.update(extra, **_notes(perf[1.0], program))
        if not rendered:
            _render_rates(perf, task)
    peak = float(np.abs(sf.read(str(root / audio[rate_key(1.0)]), dtype="float32")[0]).max())
    if peak < 1e-4:
        return {"skip": "their renders are silent", "message": f"skipping {item['id']}: silent render"}
    item["peak_db"] = round(peak_db(np.array([peak])), 2)
    return item


def _perform(midi, program, task: RenderTask) -> dict:
    """The item's performance at each rate (rate -> MIDI file), with its effect sends."""
    from gan_stretch.data.render import CHORUS_SEND, REVERB_SEND, perform

    choice, controls = task.choice, {}
    if choice["reverb"]:
        controls[REVERB_SEND] = choice["effects"]["reverb_send"]
    if choice["chorus"]:
        controls[CHORUS_SEND] = choice["effects"]["chorus_send"]
    return {r: perform(midi, program, task.job.seconds, r, controls) for r in task.rates}


def _notes(midi, program) -> dict:
    """The manifest fields of the performance at tempo 1: each channel's program, the onsets of
    the notes and of the drums."""
    from gan_stretch.data.render import DRUM_CHANNEL, note_channels, note_onsets

    onsets, drums = note_onsets(midi)
    prog = program if isinstance(program, dict) else {c: program for c in note_channels(midi) if c != DRUM_CHANNEL}
    return {"programs": {str(c): int(p) for c, p in sorted(prog.items())}, "onsets": onsets, "drum_onsets": drums}


def _render_rates(perf: dict, task: RenderTask) -> None:
    """Renders the performance at every rate, one gain for all of them, and writes the renders
    not on disk (every rate is rendered again when one is missing: the shared gain needs all)."""
    from gan_stretch.data.render import normalise, render

    choice, seconds, audio = task.choice, task.job.seconds, task.item["audio"]
    waves = {
        r: render(
            perf[r],
            choice["soundfont"],
            task.sample_rate,
            int(round(seconds * task.sample_rate / r)),
            synth=task.synth,
            reverb=choice["reverb"],
            chorus=choice["chorus"],
            room_size=choice["effects"].get("room_size", 0.2),
        )
        for r in task.rates
    }
    waves, _ = normalise(waves, choice["level"])
    for r, wave in waves.items():
        if not (task.root / audio[rate_key(r)]).is_file():
            write_audio(task.root / audio[rate_key(r)], wave, task.sample_rate)
