"""A corpus on disk: its layout, its manifest and the :class:`Corpus` that reads it.

```
<corpus>/manifest.json   {"kind", "sample_rate", "seconds", "rates", "items": [...]}
<corpus>/audio/<item id>/r1.000.flac, r0.500.flac, ...
```
Each item records its split (train / heldout), so evaluation never scores a piece trained on,
and how it was made (sound bank, programs, effects, level, seed, note onsets; see ``Item``).
The builders (``corpus.py``: true-tempo renders, ``teacher_corpora.py``: teacher stretches)
write through the helpers here.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import soundfile as sf

from gan_stretch.errors import GanStretchError
from gan_stretch.io.checkpoint import atomic_write

DEFAULT_RATES = (0.5, 0.75, 1.25, 1.5, 2.0)


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

    # what can stand for music at its own tempo (the unpaired discriminator's real side, the
    # naturalness test's reference): recordings, or a true-tempo corpus's tempo-1 renders alone (its
    # other rates never read: unlabeled audio of one sound bank, for domain adaptation)
    UNLABELED_KINDS = ("recordings", "true-tempo")

    def recording(self, item: Item) -> str:
        """The recording ``item`` is cut from (splits, folds and the real/fake halves go by it): a
        recordings corpus names it; a true-tempo render's is its piece (its source), so that the
        orchestrations of one piece stay on one side; else the item itself."""
        fallback = item.source if self.kind == "true-tempo" and item.source else item.id
        return str(item.extra.get("recording", fallback))

    def load(self, item: Item, rate: float, mono: bool = True) -> np.ndarray:
        """float32 mono [N] of ``item`` at ``rate`` (1 is the input); with ``mono=False`` every
        channel, [C, N] (recordings keep their stereo)."""
        data, sr = sf.read(str(self.root / item.audio[rate_key(rate)]), dtype="float32", always_2d=True)
        return data.mean(axis=1) if mono else np.ascontiguousarray(data.T)

    def rates(self, item: Item) -> list[float]:
        return sorted(float(k) for k in item.audio if float(k) != 1.0)

    def onsets(self, item: Item, rate: float = 1.0, drums: bool = True, pitched: bool = True) -> np.ndarray | None:
        """Note-on times of ``item``'s render at ``rate``, in seconds (at tempo r a note starts at
        t / r); drum hits included unless ``drums`` is False, pitched notes unless ``pitched`` is
        False. None for items without a score (teacher corpora). Corpora made before onsets were
        recorded get them from the score again."""
        if item.onsets is None:
            if self.kind != "true-tempo" or not item.source.startswith("music21:"):
                return None
            from gan_stretch.data.render import music21_midi, note_onsets, perform

            midi = perform(
                music21_midi(item.source.split(":", 1)[1]), item.program or 0, float(self.manifest["seconds"]), 1.0
            )
            item.onsets, item.drum_onsets = note_onsets(midi)
        times = (list(item.onsets) if pitched else []) + (list(item.drum_onsets or []) if drums else [])
        return np.asarray(sorted(times), dtype=np.float64) / float(rate)


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GanStretchError(f"corpus manifest {path} is corrupt ({e}); rebuild the corpus") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), list):
        raise GanStretchError(f"corpus manifest {path} is incomplete (no list of items); rebuild the corpus")
    return manifest


def open_corpora(data: str) -> list[Corpus]:
    """The corpora of a comma-separated list of folders (a recipe's ``data``)."""
    return [Corpus(p.strip()) for p in data.split(",") if p.strip()]


def write_manifest(root: Path, manifest: dict) -> None:
    with atomic_write(root / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def write_audio(path: Path, wave: np.ndarray, sr: int) -> None:
    """16-bit FLAC: lossless for fluidsynth's 16-bit renders, a third of the size of float WAV."""
    with atomic_write(path) as tmp:
        sf.write(str(tmp), wave, sr, format="FLAC", subtype="PCM_16")


def is_heldout(key: str, fraction: float) -> bool:
    """A stable split: the same piece is held out on every machine and every rerun."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 < fraction


def check_build(
    seconds: float, rates, heldout: float, sample_rate: int, splits=("train", "heldout"), excerpts: int | None = None
) -> None:
    """The settings a corpus build shares, checked before anything is rendered: one GanStretchError
    naming the setting (a zero length, a rate of 0, a held-out fraction beyond 1 ...)."""
    import math

    from gan_stretch.io.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    def number(v) -> float | None:
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        return v if math.isfinite(v) else None

    if number(seconds) is None or seconds <= 0:
        raise GanStretchError(f"seconds (the length of each item) must be a positive number, got {seconds!r}")
    if not list(rates):
        raise GanStretchError("rates must list at least one rate")
    for r in rates:
        if number(r) is None or r <= 0:
            raise GanStretchError(f"every rate must be a positive number (2 halves the duration), got {r!r}")
    if number(heldout) is None or not 0 <= heldout <= 1:
        raise GanStretchError(f"heldout (the fraction of pieces held out) must be in [0, 1], got {heldout!r}")
    if "train" in splits and heldout >= 1:
        raise GanStretchError(
            f"heldout {heldout:g} holds every piece out, which leaves no training items "
            "(for an evaluation set, render only the held-out pieces: --heldout-only)"
        )
    if "train" not in splits and heldout <= 0:
        raise GanStretchError("heldout 0 holds no piece out, so an evaluation set (--heldout-only) would be empty")
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int)
        or not (MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE)
    ):
        raise GanStretchError(
            f"sample rate must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, got {sample_rate!r}"
        )
    if excerpts is not None and (isinstance(excerpts, bool) or not isinstance(excerpts, int) or excerpts < 1):
        raise GanStretchError(f"excerpts (per file) must be at least 1, got {excerpts!r}")
