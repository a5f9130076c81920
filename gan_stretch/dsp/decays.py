"""Decays that keep time: a note stretched between two attacks decays as it would at the new tempo.

A performance at another tempo plays each note's attack as it is and lets the note ring in real
time until the next one: slower, the sound before the next attack has decayed further (the gap
between the hits grows quieter); faster, less. A stretch reads the input's decay more slowly or
quickly instead, so slowed-down sustains stay loud up to the next attack (a weak attack, energy
before it). Between the attack regions of :func:`gan_stretch.dsp.timemap.with_transients`, each mel
band's level is moved by its decay rate in the input (the least-squares slope of its dB over the
input's sustain, decays only) times the difference between real time and input time elapsed
since the attack. Speeding up raises the level at most back to where the attack left it.

Above the model's band (a 44.1 kHz file's cymbals and hi-hats, which no refiner shapes), a
sped-up gap reads its levels from the input itself: real time since the attack is behind the
input time read, so the level the band had then is in the input, and no line is fitted.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch

from gan_stretch.dsp.onset_detection import MEL_BANDS, TRANSIENT_FRAMES
from gan_stretch.dsp.spectrum import SpectralConfig

MAX_SLOPE_DB = 3.0  # steepest decay followed, dB per input frame (about 130 dB/s at 23 ms frames)
MAX_CUT_DB = 60.0  # the most a level is lowered


def levels_at(mel_db: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """mel_db [T, M] read at fractional frame positions [K], linearly interpolated: [K, M]."""
    p = np.clip(np.asarray(positions, dtype=np.float64), 0, len(mel_db) - 1)
    i0 = np.floor(p).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(mel_db) - 1)
    frac = (p - i0)[:, None]
    return mel_db[i0] * (1 - frac) + mel_db[i1] * frac


def corrections(
    mel_db: np.ndarray,
    positions: torch.Tensor,
    attacks: torch.Tensor,
    before: int = TRANSIENT_FRAMES[0],
    read_from: int | None = None,
) -> np.ndarray:
    """Level change in dB [n_out, M] of every output frame and mel band.

    mel_db: the input's mel-band levels [T_in, M] (all channels); positions: [n_out] source frame
    of each output frame; attacks: [n_out] bool, the frames of attack regions (no change from an
    onset on, nor before the first region); before: the frames of a region before its onset;
    read_from: the bands from this one on, where the music is sped up, take the level the input
    had at the real time elapsed since the attack (:func:`read_levels`) instead of the fitted
    decay (None: every band follows its fit; the Stretcher passes the first band above the
    model's)."""
    pos = positions.detach().cpu().numpy().astype(np.float64)
    inside = attacks.detach().cpu().numpy()
    out = np.zeros((len(pos), mel_db.shape[1]))
    read = read_from is not None and read_from < mel_db.shape[1]
    smooth = smoothed(mel_db[:, read_from:]) if read else None
    read_from = read_from if read else None
    # runs of stretched frames, each right after an attack region
    starts = np.flatnonzero(~inside[1:] & inside[:-1]) + 1
    for start in starts:
        stop = start + int(np.argmax(inside[start:])) if inside[start:].any() else len(pos)
        anchor = pos[start - 1]  # where the attack region left the input
        lo, hi = int(np.floor(anchor)), min(len(mel_db), int(np.ceil(pos[stop - 1])) + 1)
        if hi - lo < 3:
            continue
        slope = decay_slope(mel_db[lo:hi])  # [M] dB per input frame
        out[start:stop] = gap_change(mel_db, slope, anchor, pos[start:stop], 0, smooth, read_from)
        # the next attack region's first frames (their windows end before its onset) hold the same
        # sustain: they keep the level a decay reached
        out[stop : stop + before - 1] = np.minimum(out[stop - 1], 0)
    return out


def gap_change(
    mel_db: np.ndarray,
    slope: np.ndarray,
    anchor: float,
    read: np.ndarray,
    first: int = 0,
    smooth: np.ndarray | None = None,
    read_from: int | None = None,
) -> np.ndarray:
    """The level change [K, M] of stretched frames ``first`` .. ``first + K - 1`` of a gap (frame 0:
    the first after the attack region, which left the input at frame ``anchor``), which read the
    input at frames ``read`` [K]: each band's ``slope`` [M] (dB per input frame) times real time
    less input time elapsed since the attack. Where the gap is sped up, the bands from
    ``read_from`` on take the level ``smooth`` (:func:`smoothed` levels of those bands) had at the
    real time elapsed (:func:`read_levels`), and no band rises above the level where the attack
    region left off. mel_db: the input's levels [T, M]."""
    elapsed_out = np.arange(first + 1, first + len(read) + 1, dtype=np.float64)[:, None]  # real time, in frames
    elapsed_in = (np.asarray(read, dtype=np.float64) - anchor)[:, None]  # input time read
    slope = np.asarray(slope)
    change = (slope[None] if slope.ndim == 1 else slope) * (elapsed_out - elapsed_in)
    faster = elapsed_out < elapsed_in
    if smooth is not None and faster.any():  # a slowed-down gap keeps its fit: nothing to read
        change[:, read_from:] = np.where(faster, read_levels(smooth, anchor, read, first), change[:, read_from:])
    # faster (a rise): never above the level where the attack region left off
    room = np.maximum(levels_at(mel_db, [anchor]) - levels_at(mel_db, read), 0)
    return np.clip(np.minimum(change, room), -MAX_CUT_DB, None)


def decay_slope(levels: np.ndarray) -> np.ndarray:
    """Levels [n, M] (dB) of the frames between two attack regions -> each band's decay, dB per
    input frame, in [-MAX_SLOPE_DB, 0]: the least-squares slope weighted by the line's R^2.

    A note's own decay (a piano string, a drum, a plucked string, the room after it) falls in a
    straight line in dB and the line explains most of the level's variance. A sustained note (a
    bowed string, a voice, an organ), a legato line or a mix of several sounds fluctuates about a
    level or follows the phrase's dynamics, which a slower performance plays slower too: a line
    fitted there explains little, and its slope, clipped to a fall, was read as a decay (a
    sustained recording lost 1.25 dB at rate 0.5; a sustained ensemble's true render gains 0.4).
    Weighting by R^2 keeps the decays that are decays (measured with the truth: log-mel closer on
    4 of 7 evaluation sets, within 0.03 dB on the others)."""
    slope, r2 = line_fit(levels)
    return np.clip(slope * r2, -MAX_SLOPE_DB, 0.0)


def line_fit(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares line of levels [n, M] over their frames: (slope [M] per frame, R^2 [M];
    0 for a constant band)."""
    y = np.asarray(levels, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    x -= x.mean()
    yc = y - y.mean(axis=0)
    sxy = x @ yc
    return sxy / (x @ x), sxy**2 / np.maximum((x @ x) * (yc * yc).sum(axis=0), 1e-12)


def growing_slopes(levels: np.ndarray, lengths) -> np.ndarray:
    """:func:`decay_slope` of the first ``n`` frames of levels [N, M], for each ``n`` of
    ``lengths`` [K] (each at least 3, at most N): [K, M]. One pass of running sums (a stream fits
    each frame's decay over the gap so far and a bounded lookahead)."""
    y = np.asarray(levels, dtype=np.float64)
    y = y - y[:1]  # running sums of levels near 0: no cancellation in the variance
    x = np.arange(len(y), dtype=np.float64)[:, None]
    sy, sxy, syy = np.cumsum(y, axis=0), np.cumsum(x * y, axis=0), np.cumsum(y * y, axis=0)
    n = np.asarray(lengths, dtype=np.int64)
    k = n - 1
    nf = n.astype(np.float64)[:, None]
    sxx = nf * (nf * nf - 1) / 12
    cov = sxy[k] - (nf - 1) / 2 * sy[k]
    var = syy[k] - sy[k] ** 2 / nf
    r2 = cov**2 / np.maximum(sxx * var, 1e-12)
    return np.clip(cov / sxx * r2, -MAX_SLOPE_DB, 0.0)


def smoothed(mel_db: np.ndarray) -> np.ndarray:
    """Levels [T, M] averaged over 3 frames (the ends kept): what :func:`read_levels` compares,
    so a frame's own fluctuation is not read as a decay."""
    out = np.array(mel_db, dtype=np.float64, copy=True)
    out[1:-1] = (mel_db[:-2] + mel_db[1:-1] + mel_db[2:]) / 3
    return out


def read_levels(levels: np.ndarray, anchor: float, read: np.ndarray, first: int = 0) -> np.ndarray:
    """Where a gap is sped up: the change [K, M] that gives each output frame the level its bands
    had in the input at the real time elapsed since the attack (``anchor`` + first + 1, + 2, ...
    frames) instead of at the input time it reads (``read`` [K]), raises only (a decay undone; an
    undetected note later in the input is not lowered). levels: the input's levels [T, M]."""
    real = anchor + np.arange(first + 1, first + len(read) + 1, dtype=np.float64)
    return np.maximum(levels_at(levels, np.minimum(real, read)) - levels_at(levels, read), 0)


def levels_db(mel_power: np.ndarray, loudest: float | None = None) -> np.ndarray:
    """Band powers [T, M] -> levels in dB, floored 100 dB below the loudest (what
    :func:`corrections` fits its slopes to; ``loudest``: that power, if not the largest of
    ``mel_power``; a stream knows only what it has heard so far)."""
    loudest = float(mel_power.max()) if loudest is None else loudest
    return 10 * np.log10(np.maximum(mel_power, max(loudest, 1e-20) * 1e-10))


def band_centres(model: SpectralConfig, sample_rate: int) -> np.ndarray:
    """Centre frequencies (Hz) of the bands whose levels the decays follow in an input at
    ``sample_rate``: the model's mel bands (:data:`gan_stretch.dsp.onset_detection.MEL_BANDS`), then, above
    the model's Nyquist frequency (a 44.1 kHz file's cymbals and hi-hats), bands of the same mel
    width up to the input's."""
    top = model.sample_rate / 2
    edges = librosa.mel_frequencies(MEL_BANDS + 2, fmin=0.0, fmax=top, htk=False)
    width = librosa.hz_to_mel(top) / (MEL_BANDS + 1)
    high = int((librosa.hz_to_mel(sample_rate / 2) - librosa.hz_to_mel(top)) // width) - 1
    if high < 1:
        return edges[1:-1]
    above = librosa.mel_frequencies(high + 2, fmin=top, fmax=sample_rate / 2, htk=False)
    return np.concatenate([edges[1:-1], above[1:-1]])


def high_filters(model: SpectralConfig, cfg: SpectralConfig) -> np.ndarray | None:
    """Triangular mel filters [F, K] over the input's bins (``cfg``) for the bands of
    :func:`band_centres` above the model's Nyquist frequency; None when the input has none."""
    bands = len(band_centres(model, cfg.sample_rate)) - MEL_BANDS
    if bands < 1:
        return None
    fb = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=bands, fmin=model.sample_rate / 2, fmax=cfg.sample_rate / 2
    )
    return fb.T.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _band_to_bin(centres: tuple, sample_rate: int, n_fft: int, n_freq: int) -> np.ndarray:
    """[M, F]: linear interpolation between the bands' centre frequencies (held beyond the first
    and last centre) as one matrix, so a block's frames map in one product."""
    freqs = np.arange(n_freq) * sample_rate / n_fft
    return np.stack([np.interp(freqs, centres, row) for row in np.eye(len(centres))])


@functools.lru_cache(maxsize=16)
def _bin_weights(centres: tuple, cfg: SpectralConfig, first: int, device) -> torch.Tensor:
    return torch.from_numpy(_band_to_bin(centres, cfg.sample_rate, cfg.n_fft, cfg.n_freq)[:, first:]).float().to(device)


def to_bins_tensor(change: np.ndarray, cfg: SpectralConfig, centres: np.ndarray, first: int = 0, device=None):
    """:func:`to_bins` for the block loop: float32 on ``device``, bins ``first``.. of ``cfg`` only
    ([T, F - first])."""
    centres = tuple(float(c) for c in centres[: change.shape[1]])
    weights = _bin_weights(centres, cfg, first, torch.device(device or "cpu"))
    return torch.from_numpy(np.asarray(change, dtype=np.float32)).to(weights.device) @ weights


def to_bins(change: np.ndarray, cfg: SpectralConfig, centres: np.ndarray) -> np.ndarray:
    """Per-band changes [T, M] (bands centred at ``centres``, Hz: :func:`band_centres`) -> per
    bin [T, F] of ``cfg``, interpolated between the bands' centre frequencies."""
    centres = tuple(float(c) for c in centres[: change.shape[1]])
    return np.asarray(change, dtype=np.float64) @ _band_to_bin(centres, cfg.sample_rate, cfg.n_fft, cfg.n_freq)
