"""Teacher corpora: recordings, or a corpus's own inputs, stretched by a classical stretcher
(``gan_stretch.stretching.teachers``), in the layout of ``manifest.py``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gan_stretch.data.manifest import (
    DEFAULT_RATES,
    Corpus,
    check_build,
    is_heldout,
    rate_key,
    write_audio,
    write_manifest,
)
from gan_stretch.errors import GanStretchError
from gan_stretch.runtime import parallel
from gan_stretch.runtime.parallel import check_jobs

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _teacher_manifest(teacher: str, sample_rate: int, seconds, rates) -> dict:
    """The manifest of a teacher corpus, before its items."""
    return {
        "kind": "teacher",
        "teacher": teacher,
        "sample_rate": sample_rate,
        "seconds": seconds,
        "rates": rates,
        "items": [],
    }


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
    from gan_stretch.stretching import teachers

    teachers.get(teacher)  # an unknown teacher fails before any work
    check_build(seconds, rates, heldout, sample_rate, excerpts=excerpts)
    if not Path(audio_dir).exists():
        raise GanStretchError(f"audio folder not found: {audio_dir}")
    if not Path(audio_dir).is_dir():
        raise GanStretchError(f"{audio_dir} is not a folder; give the folder that holds the audio files")
    root = Path(out)
    files = sorted(p for p in Path(audio_dir).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise GanStretchError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {audio_dir}")
    manifest = _teacher_manifest(teacher, sample_rate, seconds, [float(r) for r in rates])
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
        write_manifest(root, manifest)
    if failed:
        raise GanStretchError(
            f"{len(failed)} of {len(files)} file(s) failed (first: {failed[0]}); the others are "
            f"in {root / 'manifest.json'}"
        )
    write_manifest(root, manifest)
    return Corpus(root)


def _teacher_file(task) -> list[dict]:
    """The excerpts of one recording, at tempo 1 and stretched at every rate (renders on disk are
    reused); their manifest entries. Runs in a worker process."""
    import librosa

    from gan_stretch.io.audio import load
    from gan_stretch.stretching import teachers

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
                write_audio(root / p, y, sample_rate)
        entries.append(
            {
                "id": item_id,
                "split": "heldout" if is_heldout(rel, heldout) else "train",
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
    from gan_stretch.stretching import teachers

    src, root = Corpus(corpus), Path(out)
    teachers.get(teacher)  # an unknown teacher fails before any work
    manifest = _teacher_manifest(teacher, src.sample_rate, src.manifest.get("seconds"), src.manifest.get("rates"))
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
    write_manifest(root, manifest)
    return Corpus(root)


def _teacher_item(task) -> None:
    """One item's input stretched at each of its rates (files on disk are kept). Runs in a worker process."""
    from gan_stretch.stretching import teachers

    corpus_root, item, root, teacher = task
    src, stretch = Corpus(corpus_root), teachers.get(teacher)
    x = src.load(item, 1.0)
    for key in item.audio:
        path = root / f"audio/{item.id}-{teacher}/r{key}.flac"
        if not path.is_file():
            y = x if float(key) == 1.0 else stretch(x[None], src.sample_rate, float(key))[0]
            write_audio(path, y, src.sample_rate)
