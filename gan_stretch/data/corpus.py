"""Corpora of (input, truly stretched) audio pairs on disk, described by ``manifest.json``.

Two kinds share one layout:
  true-tempo  MIDI rendered at tempo 1 and at each rate (ground truth), in three families:
              classical (music21 pieces, one GM program per item), ensemble (each part of a
              multi-part score on its own program) and groove (generated drums, bass, comping, lead)
  teacher     excerpts of recorded audio, stretched by a classical stretcher

```
<corpus>/manifest.json   {"kind", "sample_rate", "seconds", "rates", "items": [...]}
<corpus>/audio/<item id>/r1.000.flac, r0.500.flac, ...
```
Each item records its split (train / heldout), so evaluation never scores a piece trained on,
and how it was made (sound bank, programs, effects, level, seed, note onsets; see ``Item``).
A rerun reuses every render already on disk: an item's id names its render choices.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .. import parallel
from ..checkpoint import atomic_write
from ..errors import GanStretchError
from ..parallel import check_jobs

DEFAULT_RATES = (0.5, 0.75, 1.25, 1.5, 2.0)
# General MIDI programs with varied timbres: pianos, mallets, organ, guitars, bass, strings,
# choir, brass, reeds, pipes, synth lead and pad.
DEFAULT_PROGRAMS = (0, 4, 6, 11, 19, 24, 26, 32, 40, 48, 52, 56, 61, 65, 68, 71, 73, 80, 89)
COMPOSERS = ("bach", "monteverdi", "palestrina", "trecento", "josquin")  # quick to parse


def rate_key(rate: float) -> str:
    return f"{float(rate):.3f}"


@dataclass
class Item:
    """One piece of a corpus. Everything after ``audio`` is optional: older manifests lack it."""

    id: str
    split: str
    source: str
    audio: dict  # rate key -> path relative to the corpus folder
    program: int | None = None  # classical: the one GM program of every part
    soundfont: str | None = None  # the sound bank's file name (a timidity .cfg with synth timidity)
    onsets: list[float] | None = None  # note-on times at tempo 1, in seconds (true-tempo renders)
    drum_onsets: list[float] | None = None  # drum hits (GM channel 10) at tempo 1, in seconds
    family: str | None = None  # classical | ensemble | groove
    programs: dict | None = None  # MIDI channel (a string, as in JSON) -> GM program; the drum channel 9 is absent
    synth: str | None = None  # fluidsynth | timidity
    reverb: bool | None = None
    chorus: bool | None = None
    level: float | None = None  # the drawn peak level in dBFS (None: the engine's level)
    peak_db: float | None = None  # the rate-1 render's measured peak in dBFS
    seed: int | None = None  # the item's seed (notes and render choices)
    extra: dict = field(default_factory=dict)  # any other manifest field, kept as written (groove style, ...)

    @classmethod
    def from_manifest(cls, entry: dict) -> Item:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in entry.items() if k in known}, extra={k: v for k, v in entry.items() if k not in known}
        )


class Corpus:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.is_file():
            raise GanStretchError(
                f"no corpus at {self.root} (manifest.json missing); build one with "
                "`gan-stretch data midi` or `gan-stretch data teacher`"
            )
        self.manifest = read_manifest(path)
        try:
            self.sample_rate = int(self.manifest["sample_rate"])
            self.kind = str(self.manifest["kind"])
            self.items = [Item.from_manifest(it) for it in self.manifest["items"]]
            audio = [self.root / p for it in self.items for p in it.audio.values()]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise GanStretchError(
                f"corpus manifest {path} is incomplete or malformed ({type(e).__name__}: {e}); rebuild the corpus"
            ) from None
        lost = [p for p in audio if not p.is_file()]
        if lost:
            raise GanStretchError(
                f"corpus {self.root} lacks {len(lost)} audio file(s) its manifest lists "
                f"(first: {lost[0]}); rebuild the corpus (a rerun renders only what is missing)"
            )

    def split(self, name: str) -> list[Item]:
        return [it for it in self.items if it.split == name]

    def load(self, item: Item, rate: float) -> np.ndarray:
        """float32 mono [N] of ``item`` at ``rate`` (1 is the input)."""
        data, sr = sf.read(str(self.root / item.audio[rate_key(rate)]), dtype="float32")
        return data if data.ndim == 1 else data.mean(axis=1)

    def rates(self, item: Item) -> list[float]:
        return sorted(float(k) for k in item.audio if float(k) != 1.0)

    def onsets(self, item: Item, rate: float = 1.0, drums: bool = True) -> np.ndarray | None:
        """Note-on times of ``item``'s render at ``rate``, in seconds (at tempo r a note starts at
        t / r); drum hits included unless ``drums`` is False. None for items without a score
        (teacher corpora). Corpora made before onsets were recorded get them from the score again."""
        if item.onsets is None:
            if self.kind != "true-tempo" or not item.source.startswith("music21:"):
                return None
            from .render import music21_midi, note_onsets, perform

            midi = perform(
                music21_midi(item.source.split(":", 1)[1]), item.program or 0, float(self.manifest["seconds"]), 1.0
            )
            item.onsets, item.drum_onsets = note_onsets(midi)
        times = list(item.onsets) + (list(item.drum_onsets or []) if drums else [])
        return np.asarray(sorted(times), dtype=np.float64) / float(rate)


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GanStretchError(f"corpus manifest {path} is corrupt ({e}); rebuild the corpus") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), list):
        raise GanStretchError(f"corpus manifest {path} is incomplete (no list of items); rebuild the corpus")
    return manifest


def _write_manifest(root: Path, manifest: dict) -> None:
    with atomic_write(root / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def _write_audio(path: Path, wave: np.ndarray, sr: int) -> None:
    """16-bit FLAC: lossless for fluidsynth's 16-bit renders, a third of the size of float WAV."""
    with atomic_write(path) as tmp:
        sf.write(str(tmp), wave, sr, format="FLAC", subtype="PCM_16")


def _is_heldout(key: str, fraction: float) -> bool:
    """A stable split: the same piece is held out on every machine and every rerun."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 < fraction


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


FAMILIES = ("classical", "ensemble", "groove")
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


def _render_suffix(choice: dict, seed: int) -> str:
    """Id suffix naming what the render choices changed (none: today's ids stay valid)."""
    return (
        f"-{Path(choice['soundfont']).stem}"
        + ("-rev" if choice["reverb"] else "")
        + ("-cho" if choice["chorus"] else "")
        + (f"-L{choice['level']:+.1f}" if choice["level"] is not None else "")
        + (f"-s{seed}" if seed else "")
    )


@dataclass
class _Job:
    """One item to render; plain data, so that a worker process can take it."""

    key: str  # the piece: one piece is held out in every family and orchestration
    stem: str  # item id before the render suffix
    source: str
    seed: int
    family: str
    piece: str  # music21 path (classical, ensemble); empty for grooves
    seconds: float
    program: int | None = None  # classical: the GM program of every part


def _make(job: _Job):
    """(MIDI at tempo 1, program or channel -> program, extra manifest fields) of ``job``."""
    from .render import music21_midi

    if job.family == "groove":
        from .grooves import groove

        g = groove(job.seed, job.seconds)
        return (
            g.midi(),
            g.programs,
            {"groove": {"style": g.style, "bpm": g.bpm, "swing": g.swing, "key": g.key, "minor": g.minor}},
        )
    if job.family == "ensemble":
        from .ensembles import orchestrate, split_parts

        midi, parts = split_parts(music21_midi(job.piece))
        name, prog = orchestrate(parts, np.random.default_rng([job.seed, 2]))
        return midi, prog, {"ensemble": name}
    return music21_midi(job.piece), job.program, {"program": job.program}


def _jobs(
    family: str, pieces: int, programs, programs_per_piece: int, composers, seconds: float, seed: int
) -> list[_Job]:
    if family == "groove":
        return [
            _Job(f"groove-{k}", f"groove-{k:04d}", f"groove:{k}", item_seed(seed, f"groove-{k}"), family, "", seconds)
            for k in range(pieces)
        ]
    if family == "ensemble":
        from .ensembles import ENSEMBLE_COMPOSERS

        sources = corpus_sources(pieces, composers or ENSEMBLE_COMPOSERS)
        return [
            _Job(
                src, f"{_piece_name(src)}-e{k}", f"music21:{src}", item_seed(seed, f"{src}#e{k}"), family, src, seconds
            )
            for src in sources
            for k in range(programs_per_piece)
        ]
    sources = corpus_sources(pieces, composers or COMPOSERS)
    jobs = []
    for i, src in enumerate(sources):
        for k in range(programs_per_piece):
            program = programs[(i * programs_per_piece + k) % len(programs)]
            jobs.append(
                _Job(
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


def build_true_tempo(
    out: str | os.PathLike,
    pieces: int = 32,
    heldout: float = 0.25,
    seconds: float = 10.0,
    rates=DEFAULT_RATES,
    programs=DEFAULT_PROGRAMS,
    programs_per_piece: int = 1,
    sample_rate: int = 22050,
    soundfont: str | list | None = None,
    composers=None,
    splits=("train", "heldout"),
    family: str = "classical",
    synth: str = "fluidsynth",
    reverb: str = "off",
    chorus: str = "off",
    level_range: tuple[float, float] | None = None,
    seed: int = 0,
    items: int | None = None,
    jobs: int = 1,
) -> Corpus:
    """Renders ``pieces`` pieces at tempo 1 and each rate; reuses renders already on disk.

    ``family``: ``classical`` (music21 pieces, one GM program for every part, cycled through
    ``programs``), ``ensemble`` (multi-part scores, each part on its own program, drawn per item;
    ``programs_per_piece`` orchestrations of each) or ``groove`` (``pieces`` generated band grooves
    with drums). ``soundfont``: one bank or a list (a comma-separated string too) of which each item
    draws one; ``synth``: fluidsynth (.sf2/.sf3) or timidity (.cfg); ``reverb``/``chorus``: off, on
    or random per item; ``level_range``: (low, high) dBFS of each item's peak, the same gain on
    every rate. ``splits=("heldout",)`` renders only the held-out pieces (an evaluation set, e.g.
    with a soundfont never used in training); ``items`` stops after that many items. ``jobs``:
    items rendered at once, in worker processes (None: one per core); the manifest is the same
    for any number.
    """
    from .render import find_soundfont

    if family not in FAMILIES:
        raise GanStretchError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    for name, mode in (("reverb", reverb), ("chorus", chorus)):
        if mode not in EFFECTS:
            raise GanStretchError(f"{name} must be one of {', '.join(EFFECTS)}, not {mode!r}")
    if level_range is not None:
        level_range = (float(level_range[0]), float(level_range[1]))
        if not (level_range[0] <= level_range[1] <= 0):
            raise GanStretchError(
                f"level range must be low <= high <= 0 dBFS, got {level_range[0]:g} {level_range[1]:g}"
            )
    if items is not None and items < 1:
        raise GanStretchError(f"items must be at least 1, got {items}")
    names = [s.strip() for s in soundfont.split(",")] if isinstance(soundfont, str) else list(soundfont or [None])
    banks = [find_soundfont(n, synth) for n in names]  # every bank checked before anything is written

    root = Path(out)
    manifest = {
        "kind": "true-tempo",
        "family": family,
        "sample_rate": sample_rate,
        "seconds": seconds,
        "rates": [float(r) for r in rates],
        "soundfont": banks[0].name,
        "soundfonts": [b.name for b in banks],
        "synth": synth,
        "reverb": reverb,
        "chorus": chorus,
        "level_range": list(level_range) if level_range else None,
        "seed": seed,
        "items": [],
    }
    old = root / "manifest.json"
    try:  # a rerun reuses what is on disk; a corrupt manifest is rebuilt
        done = {it.get("id"): it for it in read_manifest(old)["items"] if isinstance(it, dict)} if old.is_file() else {}
    except GanStretchError:
        done = {}
    all_rates = [1.0] + [float(r) for r in rates]
    todo = _jobs(family, pieces, programs, programs_per_piece, composers, seconds, seed)
    tasks = []  # (job, the item's manifest entry so far, render choices, its entry in the old manifest)
    for job in todo:
        split = "heldout" if _is_heldout(job.key, heldout) else "train"
        if split not in splits:
            continue
        choice = choose_render(job.seed, banks, reverb, chorus, level_range)
        item_id = job.stem + _render_suffix(choice, seed)
        audio = {rate_key(r): f"audio/{item_id}/r{rate_key(r)}.flac" for r in all_rates}
        item = {
            "id": item_id,
            "split": split,
            "source": job.source,
            "family": family,
            "soundfont": choice["soundfont"].name,
            "synth": synth,
            "reverb": choice["reverb"],
            "chorus": choice["chorus"],
            "effects": choice["effects"],
            "level": choice["level"],
            "seed": job.seed,
            "audio": audio,
        }
        tasks.append(_RenderTask(root, job, item, choice, done.get(item_id), all_rates, sample_rate, synth))
    skipped: dict[str, list[str]] = {}  # why -> pieces
    finished: dict[int, dict | None] = {}  # task index -> its manifest entry (None: skipped or failed)
    failed: list[str] = []
    for i, entry, error in parallel.imap(
        _render_item, tasks, check_jobs(jobs), desc=f"rendering true-tempo pairs ({family})", unit="item"
    ):
        task, finished[i] = tasks[i], None
        if error is not None:
            failed.append(f"{task.item['id']}: {parallel.describe(error)}")
            tqdm.write(f"failed {task.item['id']}: {parallel.describe(error)}")
        elif "skip" in entry:
            tqdm.write(entry["message"])
            skipped.setdefault(entry["skip"], []).append(task.job.source)
        else:
            finished[i] = entry
        # the manifest lists every finished item, in the order of --jobs 1, as they finish: a rerun
        # after an interruption reuses them
        manifest["items"] = [finished[k] for k in sorted(finished) if finished[k] is not None]
        first = _first_items(finished, items)
        if first is not None:
            manifest["items"] = first
        if finished[i] is not None:  # a build whose every piece is skipped leaves no manifest
            _write_manifest(root, manifest)
        if first is not None:
            break
    if failed:
        raise GanStretchError(
            f"{len(failed)} of {len(tasks)} item(s) failed (first: {failed[0]}); the "
            f"{len(manifest['items'])} finished ones are in {root / 'manifest.json'}, a rerun "
            "renders the rest"
        )
    _check_not_empty(manifest["items"], splits, len(todo), skipped, root)
    _write_manifest(root, manifest)
    return Corpus(root)


def _first_items(finished: dict[int, dict | None], items: int | None) -> list[dict] | None:
    """The first ``items`` items in task order once every task before them has finished, else None."""
    if items is None:
        return None
    out = []
    for k in range(len(finished)):
        if k not in finished:
            return None
        if finished[k] is not None:
            out.append(finished[k])
            if len(out) == items:
                return out
    return None


@dataclass
class _RenderTask:
    root: Path
    job: _Job
    item: dict  # the manifest entry so far: id, split, choices, audio paths
    choice: dict  # render choices (choose_render)
    old: dict | None  # the item's entry in the manifest on disk, if any
    rates: list[float]  # 1 and every rate
    sample_rate: int
    synth: str


def _render_item(task: _RenderTask) -> dict:
    """Renders one item at every rate unless its renders are on disk; returns its manifest entry,
    or ``{"skip": why, "message": line}`` for a piece that cannot be used. Runs in a worker process."""
    from .render import (
        CHORUS_SEND,
        DRUM_CHANNEL,
        REVERB_SEND,
        normalise,
        note_channels,
        note_onsets,
        peak_db,
        perform,
        render,
    )

    root, job, item, choice, old = task.root, task.job, dict(task.item), task.choice, task.old
    audio, item_id, seconds = item["audio"], item["id"], job.seconds
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
        controls = {}
        if choice["reverb"]:
            controls[REVERB_SEND] = choice["effects"]["reverb_send"]
        if choice["chorus"]:
            controls[CHORUS_SEND] = choice["effects"]["chorus_send"]
        perf = {r: perform(midi, program, seconds, r, controls) for r in task.rates}
        onsets, drums = note_onsets(perf[1.0])
        prog = (
            program
            if isinstance(program, dict)
            else {c: program for c in note_channels(perf[1.0]) if c != DRUM_CHANNEL}
        )
        item.update(extra, programs={str(c): int(p) for c, p in sorted(prog.items())}, onsets=onsets, drum_onsets=drums)
        if not rendered:
            # every rate rendered again when one is missing: the shared gain needs all of them
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
                if not (root / audio[rate_key(r)]).is_file():
                    _write_audio(root / audio[rate_key(r)], wave, task.sample_rate)
    peak = float(np.abs(sf.read(str(root / audio[rate_key(1.0)]), dtype="float32")[0]).max())
    if peak < 1e-4:
        return {"skip": "their renders are silent", "message": f"skipping {item_id}: silent render"}
    item["peak_db"] = round(peak_db(np.array([peak])), 2)
    return item


def _check_not_empty(items: list[dict], splits, n_sources: int, skipped: dict, root: Path) -> None:
    """A corpus with no items, or no training items where training items were asked for, is an
    error that says why (every piece skipped, or all of them held out)."""
    missing = "train" if "train" in splits and not any(it["split"] == "train" for it in items) else None
    if items and missing is None:
        return
    why = "; ".join(f"{len(v)} skipped because {k} (first: {v[0]})" for k, v in skipped.items())
    if not why:
        why = f"all {n_sources} pieces fall in the other split; use more pieces or change the held-out fraction"
    raise GanStretchError(f"corpus {root} would have no {'training ' if items else ''}items: {why}")


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def build_teacher(
    audio_dir: str | os.PathLike,
    out: str | os.PathLike,
    teacher: str = "pv",
    rates=DEFAULT_RATES,
    seconds: float = 10.0,
    excerpts: int = 3,
    heldout: float = 0.25,
    sample_rate: int = 22050,
    jobs: int = 1,
) -> Corpus:
    """Excerpts of every audio file under ``audio_dir``, stretched by a classical ``teacher``;
    ``jobs`` files at once (None: one per core), the manifest the same for any number."""
    from .. import teachers

    teachers.get(teacher)  # an unknown teacher fails before any work
    root = Path(out)
    files = sorted(p for p in Path(audio_dir).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise GanStretchError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {audio_dir}")
    manifest = {
        "kind": "teacher",
        "teacher": teacher,
        "sample_rate": sample_rate,
        "seconds": seconds,
        "rates": [float(r) for r in rates],
        "items": [],
    }
    tasks = [
        (f, Path(audio_dir), root, teacher, [float(r) for r in rates], seconds, excerpts, heldout, sample_rate)
        for f in files
    ]
    finished: dict[int, list[dict]] = {}
    failed: list[str] = []
    for i, entries, error in parallel.imap(
        _teacher_file, tasks, check_jobs(jobs), desc=f"stretching recordings ({teacher})", unit="file"
    ):
        if error is not None:
            failed.append(f"{files[i]}: {parallel.describe(error)}")
            tqdm.write(f"failed {files[i]}: {parallel.describe(error)}")
            continue
        finished[i] = entries
        manifest["items"] = [e for k in sorted(finished) for e in finished[k]]
        _write_manifest(root, manifest)
    if failed:
        raise GanStretchError(
            f"{len(failed)} of {len(files)} file(s) failed (first: {failed[0]}); the others are "
            f"in {root / 'manifest.json'}"
        )
    _write_manifest(root, manifest)
    return Corpus(root)


def _teacher_file(task) -> list[dict]:
    """The excerpts of one recording, at tempo 1 and stretched at every rate (renders on disk are
    reused); their manifest entries. Runs in a worker process."""
    import librosa

    from .. import teachers
    from ..audio import load

    f, audio_dir, root, teacher, rates, seconds, excerpts, heldout, sample_rate = task
    stretch = teachers.get(teacher)
    n = int(round(seconds * sample_rate))
    wave, sr = load(f)
    mono = (
        librosa.resample(wave.mean(axis=0), orig_sr=sr, target_sr=sample_rate)
        if sr != sample_rate
        else wave.mean(axis=0)
    )
    starts = np.linspace(0, max(0, len(mono) - n), excerpts).astype(int) if len(mono) > n else [0]
    rel = f.relative_to(audio_dir).with_suffix("").as_posix().replace("/", "-")
    entries = []
    for k, start in enumerate(dict.fromkeys(starts)):
        item_id = f"{rel}-x{k}-{teacher}"
        clip = mono[start : start + n].astype(np.float32)
        if np.abs(clip).max() < 1e-4:
            continue
        audio = {rate_key(1.0): f"audio/{item_id}/r{rate_key(1.0)}.flac"}
        for r in rates:
            audio[rate_key(r)] = f"audio/{item_id}/r{rate_key(r)}.flac"
        for r_key, p in audio.items():
            if not (root / p).is_file():
                r = float(r_key)
                y = clip if r == 1.0 else stretch(clip[None], sample_rate, r)[0]
                _write_audio(root / p, y, sample_rate)
        entries.append(
            {
                "id": item_id,
                "split": "heldout" if _is_heldout(rel, heldout) else "train",
                "source": f"file:{f}",
                "audio": audio,
            }
        )
    return entries


def teacher_from_corpus(
    corpus: str | os.PathLike, out: str | os.PathLike, teacher: str = "pv", jobs: int = 1
) -> Corpus:
    """The inputs of a corpus's training items, stretched by a classical ``teacher`` at the same rates.

    Gives teacher targets for exactly the inputs that have true-tempo targets, so the two kinds
    of target can be compared with everything else equal. Held-out items are left out. ``jobs``
    items at once (None: one per core).
    """
    from .. import teachers

    src, root = Corpus(corpus), Path(out)
    teachers.get(teacher)  # an unknown teacher fails before any work
    manifest = {
        "kind": "teacher",
        "teacher": teacher,
        "sample_rate": src.sample_rate,
        "seconds": src.manifest.get("seconds"),
        "rates": src.manifest.get("rates"),
        "items": [],
    }
    items = src.split("train")
    tasks = [(src.root, item, root, teacher) for item in items]
    for i, _, error in parallel.imap(
        _teacher_item, tasks, check_jobs(jobs), desc=f"teacher targets ({teacher})", unit="item"
    ):
        if error is not None:
            raise GanStretchError(f"{items[i].id}: {parallel.describe(error)}") from error
    manifest["items"] = [
        {
            "id": f"{item.id}-{teacher}",
            "split": "train",
            "source": f"corpus:{item.id}",
            "audio": {key: f"audio/{item.id}-{teacher}/r{key}.flac" for key in item.audio},
            "program": item.program,
            "soundfont": item.soundfont,
        }
        for item in items
    ]
    _write_manifest(root, manifest)
    return Corpus(root)


def _teacher_item(task) -> None:
    """One item's input stretched at each of its rates (files on disk are kept). Runs in a worker process."""
    from .. import teachers

    corpus_root, item, root, teacher = task
    src, stretch = Corpus(corpus_root), teachers.get(teacher)
    x = src.load(item, 1.0)
    for key in item.audio:
        path = root / f"audio/{item.id}-{teacher}/r{key}.flac"
        if not path.is_file():
            y = x if float(key) == 1.0 else stretch(x[None], src.sample_rate, float(key))[0]
            _write_audio(path, y, src.sample_rate)
