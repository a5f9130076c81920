"""Pitch shifting that keeps the duration: a stretch followed by a resampler.

To move the pitch by ``n`` semitones (a frequency factor ``f = 2 ** (n / 12)``), the music is first
stretched to ``f`` times its duration (pitch kept), then resampled by ``1 / f`` (soxr, very high
quality): played at the original sample rate, it is back to its duration and every frequency is
``f`` times higher. librosa's ``pitch_shift`` and Rubber Band's ``-p`` are built the same way.
With a rate, a duration or a time map as well, the stretch goes to ``f`` times the asked length.

The stretch covers rates 0.25 to 4, so a shift alone reaches two octaves either way.
"""

from __future__ import annotations

import math

import numpy as np

from gan_stretch.dsp.timemap import MAX_RATE, MIN_RATE
from gan_stretch.errors import RateError

MAX_SEMITONES = 12 * math.log2(MAX_RATE)  # 24: a stretch by 4 (rate 0.25) and back
QUALITY = "VHQ"  # soxr's very high quality: flat to 0.95 of Nyquist, 175 dB stop band


def check_semitones(semitones) -> float:
    """``semitones`` as a float in [-24, 24]; RateError on anything else."""
    if isinstance(semitones, bool):
        raise RateError(f"pitch must be a number of semitones, got {semitones!r}")
    try:
        value = float(semitones)
    except (TypeError, ValueError):
        raise RateError(f"pitch must be a number of semitones, got {semitones!r}") from None
    if not math.isfinite(value) or abs(value) > MAX_SEMITONES:
        raise RateError(
            f"pitch must be a finite number of semitones in [{-MAX_SEMITONES:g}, {MAX_SEMITONES:g}], got {semitones}"
        )
    return value


def factor(semitones: float) -> float:
    """The frequency factor of a shift: 2 ** (semitones / 12)."""
    return 2.0 ** (check_semitones(semitones) / 12)


def stretch_map(tmap, semitones: float):
    """The time map the stretch follows before the resampler: ``tmap``'s anchors with every target
    ``f`` times later. RateError when its overall rate leaves [0.25, 4]."""
    from gan_stretch.dsp.timemap import TimeMap

    f = factor(semitones)
    target = np.round(tmap.target.astype(np.float64) * f).astype(tmap.target.dtype)
    rate = tmap.n_in / max(int(target[-1]), 1)
    if not MIN_RATE <= rate <= MAX_RATE or np.any(np.diff(target) <= 0):
        raise RateError(
            f"a shift by {semitones:g} semitones at rate {tmap.mean_rate:.4g} needs a stretch by "
            f"{rate:.4g} (rate x 2^(-semitones/12)), outside [{MIN_RATE}, {MAX_RATE}]; shift or stretch less"
        )
    return TimeMap(tmap.source, target)


class Resampler:
    """Resamples the stretched audio by ``1 / f`` block by block (soxr's stream: the same samples
    whatever the blocks), to exactly ``n_out`` samples in all."""

    def __init__(self, semitones: float, channels: int, n_out: int):
        import soxr

        self.stream = soxr.ResampleStream(factor(semitones), 1.0, channels, dtype="float32", quality=QUALITY)
        self.channels, self.left = channels, int(n_out)

    def _take(self, y: np.ndarray) -> np.ndarray:
        y = y[: self.left]
        self.left -= len(y)
        return np.ascontiguousarray(y.T)

    def push(self, block: np.ndarray) -> np.ndarray:
        """block: float32 [C, k] of the stretch -> [C, k'] resampled."""
        return self._take(self.stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32)))

    def finish(self) -> np.ndarray:
        """The resampler's last samples, then zeros up to ``n_out`` (at most a few samples: the
        stretch's length times 1 / f, rounded)."""
        tail = self._take(self.stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
        pad = np.zeros((self.channels, self.left), np.float32)
        self.left = 0
        return np.concatenate([tail, pad], axis=1)


def resample(audio: np.ndarray, semitones: float, n_out: int) -> np.ndarray:
    """[C, M] stretched audio -> [C, n_out], resampled by 1 / f as :class:`Resampler` does."""
    r = Resampler(semitones, audio.shape[0], n_out)
    return np.concatenate([r.push(audio), r.finish()], axis=1)
