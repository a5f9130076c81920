"""Objective measures for stretched audio. Inputs are numpy float arrays [N] or [C, N] at ``sr``.

Two axes, always side by side: a distance to the true-tempo render, and what listeners hear.

Distance. log_mel_distance is defined exactly, so results compare across runs:
  mel power spectrograms (n_fft 2048, hop 256, 80 mels; librosa's defaults otherwise) of output
  and truth, trimmed to equal length; dB = 10*log10(max(P, max(P_truth) * 1e-8)); per frame the
  RMS over mel bins of the dB difference; mean over frames (and over channels).

Perception (each against the true-tempo render, mono):
  visqol            ViSQOL v3 audio mode MOS-LQO (1-5, higher better), both signals at 48 kHz.
  attack_db         sharpness of note attacks: the onset-strength envelope's peak within 30 ms
                    of each note onset of the score, output over truth, 20*log10 of the ratio of
                    the sums over onsets (0 is right, negative = weaker attacks).
  smear_db          pre-onset smear (pre-echo): per onset 10*log10(energy 40 ms before / 40 ms
                    after), output minus truth, mean over onsets (0 is right, positive = smeared).
  attack_high_db, smear_high_db  the same at the drum hits, above 11.025 kHz only (hi-hats and
                    cymbals of a 44.1 kHz file, the band above the model's).
  oversmoothing_db  global variance over time of each log-mel band, output over truth, in dB,
                    mean over bands (0 is right, negative = over-smoothed texture).
  two_sample_accuracy  held-out accuracy of a fresh small classifier trained to tell a method's
                    log-mel patches from the true renders' (50% = indistinguishable).
"""

from __future__ import annotations

import librosa
import numpy as np
import torch


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
        scores.append(np.sqrt((diff**2).mean(axis=0)).mean())
    return float(np.mean(scores))


def spectral_convergence(output, truth, sr: int | None = None, n_fft: int = 2048) -> float:
    """|| |S_truth| - |S_out| ||_F / || |S_truth| ||_F on |STFT| (n_fft 2048, hop n_fft/4)."""
    out, ref = _pair(output, truth)
    s_out = np.abs(librosa.stft(out, n_fft=n_fft, hop_length=n_fft // 4))
    s_ref = np.abs(librosa.stft(ref, n_fft=n_fft, hop_length=n_fft // 4))
    return float(np.linalg.norm(s_ref - s_out) / max(np.linalg.norm(s_ref), 1e-12))


def multi_resolution_stft_distance(
    output, truth, sr: int | None = None, resolutions=((512, 128), (1024, 256), (2048, 512))
) -> float:
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
    corr = np.array(
        [np.dot(a[max(0, -l) : n - max(0, l)], b[max(0, l) : n - max(0, -l)]) / max(n - abs(l), 1) for l in lags]
    )
    k = int(np.argmax(corr))
    shift = float(lags[k])
    if 0 < k < len(corr) - 1:
        den = corr[k - 1] - 2 * corr[k] + corr[k + 1]
        if den < 0:
            shift += 0.5 * (corr[k - 1] - corr[k + 1]) / den
    return shift * 1200 / bins_per_octave


# --- perception -------------------------------------------------------------------------------

ONSET_WINDOW = 0.030  # seconds each side of a score onset where the attack's peak is looked for
SMEAR_WINDOW = 0.040  # seconds before and after an onset whose energies are compared
VISQOL_RATE = 48000  # ViSQOL's audio mode is defined at 48 kHz


def _mono(x) -> np.ndarray:
    return _channels(x).mean(axis=0)


def _mono_pair(output, truth) -> tuple[np.ndarray, np.ndarray]:
    out, ref = _mono(output), _mono(truth)
    n = min(len(out), len(ref))
    return out[:n], ref[:n]


_VISQOL = {}


def visqol(output, truth, sr: int) -> float:
    """ViSQOL v3 audio-mode MOS-LQO of ``output`` with ``truth`` as the reference (about 4.7 for
    identical signals, lower for audible differences), both resampled to 48 kHz (soxr)."""
    import soxr

    if "api" not in _VISQOL:  # the model and its JIT-compiled kernels are built once per process
        import logging

        from visqol.api import VisqolApi

        logging.getLogger("visqol").setLevel(logging.ERROR)  # a duration warning per clip otherwise
        _VISQOL["api"] = VisqolApi()
        _VISQOL["api"].create(mode="audio")
    out, ref = _mono_pair(output, truth)
    if sr != VISQOL_RATE:
        out, ref = (soxr.resample(x.astype(np.float64), sr, VISQOL_RATE) for x in (out, ref))
    threads = torch.get_num_threads()  # its numba kernels change torch's thread count; keep the caller's
    try:
        return float(
            _VISQOL["api"].measure_from_arrays(ref.astype(np.float64), out.astype(np.float64), VISQOL_RATE).moslqo
        )
    finally:
        torch.set_num_threads(threads)


def _onset_hop(sr: int) -> int:
    """About 5.8 ms: 128 samples at 22.05 kHz, 256 at 44.1 kHz."""
    return max(1, int(round(sr * 128 / 22050)))


def onset_envelope(x, sr: int, fmin: float = 0.0) -> tuple[np.ndarray, float]:
    """Onset strength (librosa's spectral flux on log-mel, 23 ms frames) of mono ``x``, on the mel
    bands from ``fmin`` Hz up: (envelope [T], seconds per envelope frame)."""
    import librosa

    hop = _onset_hop(sr)
    env = librosa.onset.onset_strength(
        y=np.ascontiguousarray(_mono(x)), sr=sr, hop_length=hop, n_fft=4 * hop, n_mels=80, fmin=fmin, center=True
    )
    return env, hop / sr


# the band above the model's (11.025 kHz: a 22.05 kHz model's Nyquist frequency), where a 44.1 kHz
# file's cymbals, hi-hats and consonants are
HIGH_BAND_HZ = 11025.0


def high_pass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    """``x`` [..., N] with the band below ``cutoff`` Hz removed (8th-order Butterworth, run
    forwards and backwards: no delay, so attacks stay where they are)."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(8, cutoff, "highpass", fs=sr, output="sos"), x, axis=-1)


def _distinct(onsets, spacing: float = 0.010) -> np.ndarray:
    """Sorted onset times with the notes of one chord (within ``spacing`` seconds) counted once."""
    times = np.sort(np.asarray(onsets, dtype=np.float64))
    if len(times) == 0:
        return times
    return times[np.concatenate([[True], np.diff(times) > spacing])]


def attack_db(output, truth, sr: int, onsets, fmin: float = 0.0) -> float:
    """Peak onset strength within 30 ms of each onset (seconds, in the output's time), output
    over truth: 20*log10(sum over onsets of the output's peaks / the truth's). NaN without onsets.
    ``fmin``: only the mel bands from there up (:data:`HIGH_BAND_HZ`: hi-hats and cymbals)."""
    out, ref = _mono_pair(output, truth)
    e_out, step = onset_envelope(out, sr, fmin)
    e_ref, _ = onset_envelope(ref, sr, fmin)
    w = int(round(ONSET_WINDOW / step))
    peaks_out, peaks_ref = [], []
    for t in _distinct(onsets):
        k = int(round(t / step))
        if k >= len(e_ref):
            continue
        lo, hi = max(0, k - w), min(len(e_ref), k + w + 1)
        peaks_out.append(e_out[lo:hi].max())
        peaks_ref.append(e_ref[lo:hi].max())
    if not peaks_ref or sum(peaks_ref) <= 0:
        return float("nan")
    return float(20 * np.log10(max(sum(peaks_out), 1e-12) / sum(peaks_ref)))


def smear_db(output, truth, sr: int, onsets, fmin: float = 0.0) -> float:
    """Pre-onset smear: per onset (seconds, output's time) 10*log10(energy in the 40 ms before /
    energy in the 40 ms after), output minus truth, mean over onsets. Onsets closer than 40 ms to
    either end, or where the truth is silent around them, are skipped. NaN without onsets.
    ``fmin``: the energies above that frequency only (:func:`high_pass`)."""
    out, ref = _mono_pair(output, truth)
    if fmin > 0:
        out, ref = high_pass(out, sr, fmin), high_pass(ref, sr, fmin)
    w = int(round(SMEAR_WINDOW * sr))
    floor = 1e-10 * max(float(np.max(ref**2)), 1e-20) * w  # 100 dB below a full window at the peak
    diffs = []
    for t in _distinct(onsets):
        k = int(round(t * sr))
        if k - w < 0 or k + w > len(ref):
            continue
        pre_r, post_r = float(np.sum(ref[k - w : k] ** 2)), float(np.sum(ref[k : k + w] ** 2))
        if post_r <= floor:
            continue
        pre_o, post_o = float(np.sum(out[k - w : k] ** 2)), float(np.sum(out[k : k + w] ** 2))
        ratio = lambda pre, post: 10 * np.log10(max(pre, floor) / max(post, floor))
        diffs.append(ratio(pre_o, post_o) - ratio(pre_r, post_r))
    return float(np.mean(diffs)) if diffs else float("nan")


def _log_mel(x, sr: int, floor_power: float | None = None) -> tuple[np.ndarray, float]:
    """log-mel dB [80, T] with the benchmark's settings (n_fft 2048, hop 256) of mono ``x``,
    floored at ``floor_power`` (default: 80 dB below its own maximum); returns (dB, floor used)."""
    import librosa

    p = librosa.feature.melspectrogram(
        y=np.ascontiguousarray(_mono(x)), sr=sr, n_fft=2048, hop_length=256, n_mels=80, power=2.0
    )
    floor = max(float(p.max()) * 1e-8, np.finfo(np.float32).tiny) if floor_power is None else floor_power
    return 10 * np.log10(np.maximum(p, floor)), floor


def oversmoothing_db(output, truth, sr: int) -> float:
    """Global variance over time of each log-mel band (both floored 80 dB below the truth's
    maximum), output over truth, 10*log10 of the ratio, mean over bands where the truth varies."""
    out, ref = _mono_pair(output, truth)
    db_ref, floor = _log_mel(ref, sr)
    db_out, _ = _log_mel(out, sr, floor)
    gv_out, gv_ref = db_out.var(axis=1), db_ref.var(axis=1)
    bands = gv_ref > 1e-3
    if not bands.any():
        return float("nan")
    return float(np.mean(10 * np.log10(np.maximum(gv_out[bands], 1e-6) / gv_ref[bands])))


PATCH_FRAMES = 32  # log-mel frames per classifier patch (0.37 s at 22.05 kHz)


def mel_patches(x, sr: int, frames: int = PATCH_FRAMES, step: int | None = None) -> np.ndarray:
    """Log-mel patches [K, 80, frames] of mono ``x`` (dB relative to its own maximum, floored at -80,
    so level alone does not tell methods apart), every ``step`` frames (default frames / 2)."""
    db, _ = _log_mel(x, sr)
    db = db - db.max()
    step = step or frames // 2
    starts = range(0, max(db.shape[1] - frames, 0) + 1, step)
    return (
        np.stack([db[:, s : s + frames] for s in starts if s + frames <= db.shape[1]]).astype(np.float32)
        if db.shape[1] >= frames
        else np.zeros((0, db.shape[0], frames), np.float32)
    )


def _patch_classifier():
    """A small CNN on log-mel patches [B, 1, 80, frames] -> logit of 'a true render'. The patch
    is halved in both axes first: enough to see attacks, smear and texture, cheap on a CPU."""
    from torch import nn

    return nn.Sequential(
        nn.AvgPool2d(2),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 1),
    )


def two_sample_accuracy(
    fake: list[tuple[str, float, np.ndarray]],
    real: list[tuple[str, float, np.ndarray]],
    seed: int = 0,
    steps: int = 600,
    batch: int = 64,
) -> dict:
    """Held-out accuracy of a fresh classifier telling ``fake`` patches from ``real`` ones.

    fake, real: (piece, rate, patches [K, 80, frames]) per clip. Two folds over the pieces (sorted,
    alternating): a classifier is trained on one fold's pieces and tested on the other's, so no
    piece is both trained and tested on. Returns {"per_rate": {rate: accuracy on the held-out
    patches of that rate, each class weighted equally}, "accuracy": the mean over rates}; 0.5
    means indistinguishable.
    Deterministic for a seed (the classifier runs on the CPU, on one thread).
    """
    pieces = sorted({p for p, _, _ in real} | {p for p, _, _ in fake})
    if len(pieces) < 2:
        raise ValueError("the two-sample test needs at least two pieces (train on one, test on another)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs slower on more threads, and is deterministic on one
    try:
        return _two_sample(fake, real, pieces, seed, steps, batch)
    finally:
        torch.set_num_threads(threads)


def _two_sample(fake, real, pieces, seed: int, steps: int, batch: int) -> dict:
    folds = [set(pieces[0::2]), set(pieces[1::2])]
    correct: dict[float, list[float]] = {}
    for k, test in enumerate(folds):

        def gather(rows, train: bool):
            keep = [(r, x) for p, r, x in rows if (p not in test) == train and len(x)]  # noqa: B023 (this fold's)
            if not keep:
                return np.zeros((0, 1, 1, 1), np.float32), np.zeros(0)
            return np.concatenate([x for _, x in keep]), np.concatenate([np.full(len(x), r) for r, x in keep])

        xf, _ = gather(fake, True)
        xr, _ = gather(real, True)
        if not len(xf) or not len(xr):
            continue
        torch.manual_seed(seed * 2 + k)
        rng = np.random.default_rng([seed, k])
        net = _patch_classifier()
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        norm = lambda x: torch.from_numpy((np.asarray(x) + 40.0) / 40.0)[:, None]
        for _ in range(steps):
            i, j = rng.integers(0, len(xf), batch // 2), rng.integers(0, len(xr), batch // 2)
            x = norm(np.concatenate([xf[i], xr[j]]))
            y = torch.cat([torch.zeros(len(i)), torch.ones(len(j))])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            for rows, label in ((fake, 0), (real, 1)):
                x, rates = gather(rows, False)
                if not len(x):
                    continue
                pred = torch.cat([net(norm(x[s : s + 512])).squeeze(1) for s in range(0, len(x), 512)]) > 0
                hits = (pred.numpy() == bool(label)).astype(np.float64)
                for rate in np.unique(rates):
                    # each class counts half, whatever its patch count
                    correct.setdefault(float(rate), []).append(float(hits[rates == rate].mean()))
    per_rate = {r: float(np.mean(v)) for r, v in sorted(correct.items())}
    return {"accuracy": float(np.mean(list(per_rate.values()))) if per_rate else float("nan"), "per_rate": per_rate}
