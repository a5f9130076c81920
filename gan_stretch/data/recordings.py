"""Recorded music from Debian packages: excerpts at their own sample rate, stereo kept.

Recordings have no true-tempo twin; they are what people stretch. This family is scored with
the measures that need no truth (:mod:`gan_stretch.measures.naturalness`) and its training split feeds the
unpaired discriminator (recordings at their own tempo are "truly played" audio). A corpus in
the layout of :mod:`gan_stretch.data.manifest`, kind ``recordings``, one rate (1)::

    gan-stretch data recordings --out data/recordings      # after: apt-get install <the packages>

Each source names its Debian package, the style of its music, where its files are and the
licence its copyright file states (``/usr/share/doc/<package>/copyright``); a source whose
package is missing is reported with the ``apt-get install`` line and the build stops. The split
is by recording: within each package the recordings are ordered by a stable hash of their name
and the first ``heldout`` fraction is held out, so a recording is never on both sides, every
style is in both, and the same recordings are held out on every machine.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from gan_stretch.data.manifest import Corpus, rate_key, write_manifest
from gan_stretch.errors import GanStretchError
from gan_stretch.io.checkpoint import atomic_write

MIN_SAMPLE_RATE = 22050  # files below it are sound effects or previews, not music
SILENT_DBFS = -45.0  # an excerpt quieter than this (RMS) is moved along the recording
EXCERPT_SPACING = 45.0  # seconds of recording per excerpt: a 3-minute piece gives 3 (at most ``excerpts``)


@dataclass(frozen=True)
class Source:
    """One Debian package of recorded music. ``files(root)`` lists (recording name, loader) pairs,
    the loader returning (audio [C, N] float32, sample rate); ``root`` is the file system root
    (``/`` on a real machine; a folder in tests)."""

    package: str
    style: str
    licence: str  # as the package's copyright file states it
    files: Callable[[Path], list[tuple[str, Callable[[], tuple[np.ndarray, int]]]]]


def _read(path: Path | io.BytesIO) -> tuple[np.ndarray, int]:
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sr)


def _plain(folder: str, pattern: str = "*.ogg"):
    """Every file matching ``pattern`` in ``folder`` (relative to the root), one recording each."""

    def files(root: Path):
        return [(p.stem, lambda p=p: _read(p)) for p in sorted((root / folder).glob(pattern))]

    return files


def _stems(folder: str):
    """Frets on Fire songs: each song's folder holds its stems (``song.ogg`` the band, ``guitar.ogg``
    the lead guitar, ``rhythm.ogg`` where there is one), which the game plays together: their sum
    is the recording (scaled down only where it would clip)."""

    def mix(song: Path) -> tuple[np.ndarray, int]:
        stems = [_read(p) for p in sorted(song.glob("*.ogg"))]
        rates = {sr for _, sr in stems}
        if len(rates) != 1:
            raise GanStretchError(f"{song}: stems at different sample rates {sorted(rates)}")
        n = min(x.shape[-1] for x, _ in stems)
        total = sum(x[:, :n] for x, _ in stems)
        peak = float(np.abs(total).max())
        return (total / peak * 0.99 if peak > 0.99 else total).astype(np.float32), rates.pop()

    def files(root: Path):
        songs = sorted(p for p in (root / folder).iterdir() if p.is_dir() and any(p.glob("*.ogg")))
        return [(p.name, lambda p=p: mix(p)) for p in songs]

    return files


def _archive(path: str, folder: str):
    """Ogg files inside a zip archive (a game's .pk3), read without unpacking it."""

    def files(root: Path):
        archive = root / path
        with zipfile.ZipFile(archive) as z:
            names = sorted(n for n in z.namelist() if n.startswith(folder) and n.endswith(".ogg"))

        def load(name: str) -> tuple[np.ndarray, int]:
            with zipfile.ZipFile(archive) as z:
                return _read(io.BytesIO(z.read(name)))

        return [(Path(n).stem, lambda n=n: load(n)) for n in names]

    return files


# Chosen for their styles: an orchestral soundtrack (strings, brass, choir, percussion in a hall),
# metal bands with drums, bass, guitars and vocals, and electronic music (synthesizers, drum
# machines). Their stated licences let the excerpts be used for research.
SOURCES = (
    Source(
        "wesnoth-1.16-music",
        "orchestral",
        "GPL-2+",
        _plain("usr/share/games/wesnoth/1.16/data/core/music"),
    ),
    Source(
        "fretsonfire-songs-muldjord",
        "band",
        "CC-BY-SA-3.0",
        _stems("usr/share/games/fretsonfire/data/songs/muldjord"),
    ),
    Source(
        "fretsonfire-songs-sectoid",
        "band",
        "MIT",
        _stems("usr/share/games/fretsonfire/data/songs/sectoid"),
    ),
    Source(
        "nexuiz-music",
        "electronic",
        "GPL-2+",
        _archive("usr/share/games/nexuiz/data/music.pk3", "sound/cdtracks/"),
    ),
)


def missing_packages(sources=SOURCES, root: str | os.PathLike = "/") -> list[str]:
    """The packages of ``sources`` whose music is not on this machine."""
    missing = []
    for s in sources:
        try:
            if not s.files(Path(root)):
                missing.append(s.package)
        except (OSError, zipfile.BadZipFile):
            missing.append(s.package)
    return missing


def heldout_recordings(names: list[str], fraction: float) -> set[str]:
    """The held-out share of one package's recordings: ordered by a stable hash of their names,
    the first ``ceil(fraction * n)`` (at least one, and one left for training, when there are two)."""
    if not names:
        return set()
    k = math.ceil(fraction * len(names))
    k = min(max(k, 1 if fraction > 0 else 0), len(names) - 1 if len(names) > 1 and fraction < 1 else len(names))
    return set(sorted(names, key=lambda n: (zlib.crc32(n.encode()), n))[:k])


def excerpt_starts(wave: np.ndarray, sr: int, seconds: float, excerpts: int) -> list[int]:
    """Where the excerpts of one recording start (samples): one per ``EXCERPT_SPACING`` seconds
    of recording, at most ``excerpts``, evenly spread between 10 % and 90 % of its length (intros
    and fade-outs left out); an excerpt quieter than ``SILENT_DBFS`` moves forward by its own
    length until it is not (dropped if it never is)."""
    n, total = int(round(seconds * sr)), wave.shape[-1]
    if total < n:
        return []
    count = max(1, min(excerpts, int(total / sr // EXCERPT_SPACING)))
    lo, hi = int(0.1 * total), max(int(0.1 * total), int(0.9 * total) - n)
    starts = []
    for s in np.linspace(lo, hi, count + 2)[1:-1].astype(int) if count > 1 else [(lo + hi) // 2]:
        while s + n <= total and 20 * np.log10(np.sqrt(np.mean(wave[:, s : s + n] ** 2)) + 1e-12) < SILENT_DBFS:
            s += n
        if s + n <= total and (not starts or s >= starts[-1] + n):
            starts.append(int(s))
    return starts


def build_recordings(
    out: str | os.PathLike,
    seconds: float = 10.0,
    excerpts: int = 3,
    heldout: float = 0.4,
    sources=SOURCES,
    root: str | os.PathLike = "/",
) -> Corpus:
    """Excerpts of every recording of ``sources`` (see the module docstring) as a corpus at
    ``out``: ``audio/<item>/r1.000.flac`` (24-bit FLAC at the recording's own sample rate and
    channels) and a manifest listing, per excerpt, its package, file, offset, style, licence and
    split. Excerpts on disk are reused."""
    if not 0 < seconds <= 600:
        raise GanStretchError(f"--seconds must be in (0, 600], got {seconds:g}")
    if excerpts < 1:
        raise GanStretchError(f"--excerpts must be at least 1, got {excerpts}")
    if not 0 <= heldout <= 1:
        raise GanStretchError(f"--heldout must be a fraction in [0, 1], got {heldout:g}")
    missing = missing_packages(sources, root)
    if missing:
        raise GanStretchError(
            f"the recorded music of {', '.join(missing)} is not installed; run: apt-get install {' '.join(missing)}"
        )
    dest = Path(out)
    items, rates = [], set()
    for source in sources:
        recordings = source.files(Path(root))
        held = heldout_recordings([name for name, _ in recordings], heldout)
        for name, load in recordings:
            wave, sr = load()
            if sr < MIN_SAMPLE_RATE:
                continue
            for k, start in enumerate(excerpt_starts(wave, sr, seconds, excerpts)):
                item_id = f"{source.package}-{_slug(name)}-x{k}"
                path = f"audio/{item_id}/r{rate_key(1.0)}.flac"
                if not (dest / path).is_file():
                    clip = wave[:, start : start + int(round(seconds * sr))]
                    with atomic_write(dest / path) as tmp:
                        sf.write(str(tmp), clip.T, sr, format="FLAC", subtype="PCM_24")
                rates.add(sr)
                items.append(
                    {
                        "id": item_id,
                        "split": "heldout" if name in held else "train",
                        "source": f"debian:{source.package}:{name}",
                        "audio": {rate_key(1.0): path},
                        "family": "recording",
                        "package": source.package,
                        "file": name,
                        "recording": f"{source.package}/{name}",
                        "offset": round(start / sr, 6),
                        "sample_rate": sr,
                        "channels": int(wave.shape[0]),
                        "style": source.style,
                        "licence": source.licence,
                    }
                )
    if not items:
        raise GanStretchError(
            f"no recording is at least {seconds:g} s long and sampled at {MIN_SAMPLE_RATE} Hz or more"
        )
    manifest = {
        "kind": "recordings",
        "sample_rate": max(rates) if len(rates) > 1 else rates.pop(),
        "seconds": seconds,
        "rates": [1.0],
        "heldout": heldout,
        "items": items,
    }
    write_manifest(dest, manifest)
    return Corpus(dest)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name.lower())
