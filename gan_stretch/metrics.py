"""Objective measures for stretched audio. Inputs are numpy float arrays [N] or [C, N] at ``sr``.

log_mel_distance is defined exactly, so results compare across runs:
  mel power spectrograms (n_fft 2048, hop 256, 80 mels; librosa's defaults otherwise) of output
  and truth, trimmed to equal length; dB = 10*log10(max(P, max(P_truth) * 1e-8)); per frame the
  RMS over mel bins of the dB difference; mean over frames (and over channels).
"""
from __future__ import annotations

import time

import librosa
import numpy as np


def _channels(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[None] if x.ndim == 1 else x


def _pair(output, truth) -> tuple[np.ndarray, np.ndarray]:
    out, ref = _channels(output), _channels(truth)
    if out.shape[0] != ref.shape[0]:
        out, ref = out.mean(0, keepdims=True), ref.mean(0, keepdims=True)
    n = min(out.shape[-1], ref.shape[-1])
    return out[:, :n], ref[:, :n]


def log_mel_distance(output, truth, sr: int) -> float:
    """Mean per-frame RMS difference of log-mel power spectra, in dB (lower is better)."""
    out, ref = _pair(output, truth)
    scores = []
    for o, r in zip(out, ref):
        p_out = librosa.feature.melspectrogram(y=o, sr=sr, n_fft=2048, hop_length=256, n_mels=80, power=2.0)
        p_ref = librosa.feature.melspectrogram(y=r, sr=sr, n_fft=2048, hop_length=256, n_mels=80, power=2.0)
        floor = max(float(p_ref.max()) * 1e-8, np.finfo(np.float32).tiny)
        diff = 10 * np.log10(np.maximum(p_out, floor)) - 10 * np.log10(np.maximum(p_ref, floor))
        scores.append(np.sqrt((diff ** 2).mean(axis=0)).mean())
    return float(np.mean(scores))


def spectral_convergence(output, truth, sr: int | None = None, n_fft: int = 2048) -> float:
    """|| |S_truth| - |S_out| ||_F / || |S_truth| ||_F on |STFT| (n_fft 2048, hop n_fft/4)."""
    out, ref = _pair(output, truth)
    s_out = np.abs(librosa.stft(out, n_fft=n_fft, hop_length=n_fft // 4))
    s_ref = np.abs(librosa.stft(ref, n_fft=n_fft, hop_length=n_fft // 4))
    return float(np.linalg.norm(s_ref - s_out) / max(np.linalg.norm(s_ref), 1e-12))


def multi_resolution_stft_distance(output, truth, sr: int | None = None,
                                   resolutions=((512, 128), (1024, 256), (2048, 512))) -> float:
    """Mean L1 distance of log10 |STFT| (magnitudes floored at 1e-5) over three resolutions."""
    out, ref = _pair(output, truth)
    total = 0.0
    for n_fft, hop in resolutions:
        a = np.log10(np.maximum(np.abs(librosa.stft(out, n_fft=n_fft, hop_length=hop)), 1e-5))
        b = np.log10(np.maximum(np.abs(librosa.stft(ref, n_fft=n_fft, hop_length=hop)), 1e-5))
        total += float(np.abs(a - b).mean())
    return total / len(resolutions)


def duration_error(output, expected_samples: int, sr: int) -> float:
    """Output duration minus the expected duration, in seconds."""
    return (_channels(output).shape[-1] - expected_samples) / sr


def _log_frequency_spectrum(x: np.ndarray, sr: int, bins_per_octave: int) -> np.ndarray:
    """Long-term magnitude spectrum resampled on a log-frequency axis (27.5 Hz up to sr/2)."""
    mono = _channels(x).mean(axis=0)
    mag = np.abs(librosa.stft(mono, n_fft=8192, hop_length=2048)).mean(axis=1)
    freqs = np.fft.rfftfreq(8192, 1 / sr)
    grid = 27.5 * 2 ** (np.arange(int(bins_per_octave * np.log2(sr / 2 / 27.5))) / bins_per_octave)
    return np.log1p(np.interp(grid, freqs, mag) / max(mag.max(), 1e-12) * 1000)


def pitch_shift_cents(output, reference, sr: int, bins_per_octave: int = 1200, max_cents: float = 2400) -> float:
    """Shift of ``output``'s long-term log-frequency spectrum against ``reference``'s, in cents.

    About 0 for a correct stretcher, 1200*log2(rate) for plain resampling. The best lag of the
    cross-correlation of the two log-frequency spectra, refined by a parabola through its peak.
    """
    a = _log_frequency_spectrum(reference, sr, bins_per_octave)
    b = _log_frequency_spectrum(output, sr, bins_per_octave)
    a, b = a - a.mean(), b - b.mean()
    max_lag = int(max_cents * bins_per_octave / 1200)
    lags = np.arange(-max_lag, max_lag + 1)
    n = len(a)
    corr = np.array([np.dot(a[max(0, -l):n - max(0, l)], b[max(0, l):n - max(0, -l)]) /
                     max(n - abs(l), 1) for l in lags])
    k = int(np.argmax(corr))
    shift = float(lags[k])
    if 0 < k < len(corr) - 1:
        den = corr[k - 1] - 2 * corr[k] + corr[k + 1]
        if den < 0:
            shift += 0.5 * (corr[k - 1] - corr[k + 1]) / den
    return shift * 1200 / bins_per_octave


def realtime_factor(fn, wave, sr: int, *args, repeats: int = 1) -> tuple[float, object]:
    """Seconds of input audio processed per second of wall time (higher is faster), and fn's output."""
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(wave, sr, *args)
    elapsed = (time.perf_counter() - start) / repeats
    return _channels(wave).shape[-1] / sr / max(elapsed, 1e-9), out
