"""The log-mel distance pinned against an independent computation of its README definition.

The reference below is written from the definition alone (n_fft 2048, hop 256, 80 mels, floor
80 dB below the truth's maximum, RMS over mel bins per frame, mean over frames) with numpy's FFT
and librosa's mel filterbank, not with librosa.feature.melspectrogram as metrics.py is. The
errors are non-uniform (a uniform gain is the same number in every representation), so a changed
floor, reduction, mel count, hop or FFT size moves the result by far more than the 1e-4 dB the
two computations agree to (float32 against float64: about 5e-6 dB measured).
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal

from gan_stretch.measures import metrics

from conftest import music_like

SR = 22050
N_FFT, HOP, N_MELS, FLOOR_DB = 2048, 256, 80, 80.0
TOL = 1e-4  # dB


def reference_mel_power(x: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Mel power spectrogram [T, 80] of the first n samples: centred frames (zeros beyond the ends),
    periodic Hann window, |rfft|^2, librosa's Slaney mel filterbank."""
    window = scipy.signal.get_window("hann", N_FFT)  # periodic, as librosa's STFT uses
    padded = np.pad(np.asarray(x[:n], np.float64), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP] * window  # [T, N_FFT]
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return power @ librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS).astype(np.float64).T


def reference_diff(output: np.ndarray, truth: np.ndarray, sr: int) -> np.ndarray:
    """dB difference [T, 80] of the floored mel spectra (mono inputs)."""
    n = min(len(output), len(truth))
    p_out, p_ref = reference_mel_power(output, sr, n), reference_mel_power(truth, sr, n)
    floor = p_ref.max() * 10 ** (-FLOOR_DB / 10)
    return 10 * np.log10(np.maximum(p_out, floor)) - 10 * np.log10(np.maximum(p_ref, floor))


def reference_distance(output: np.ndarray, truth: np.ndarray, sr: int = SR) -> float:
    """RMS over mel bins per frame, mean over frames."""
    return float(np.sqrt((reference_diff(output, truth, sr) ** 2).mean(axis=1)).mean())


@pytest.fixture(scope="module")
def x():
    return music_like(2 * SR)


def test_frame_varying_gain(x):
    """A new gain every 0.1 s (-12..12 dB): frames straddle the steps, so the value depends on the hop
    and the window, not only on the gains."""
    g_db = np.random.default_rng(0).uniform(-12, 12, size=21)
    gain = np.repeat(10 ** (g_db / 20), SR // 10)[: len(x)].astype(np.float32)
    got = metrics.log_mel_distance(x * gain, x, SR)
    assert got == pytest.approx(reference_distance(x * gain, x), abs=TOL)
    assert 7.0 < got < 9.5  # near the mean |gain| (7.1 dB), above it where frames straddle a step


def test_gain_ramp_has_its_mean_absolute_gain():
    """A slow ramp from -12 to +12 dB: each frame is a near-uniform gain of its centre's dB, and the
    mean over frames of |gain| is 6 dB (a known value, independent of the reference)."""
    x = music_like(2 * SR, seed=4)
    ramp = 10 ** (np.linspace(-12, 12, len(x)) / 20)
    got = metrics.log_mel_distance((x * ramp).astype(np.float32), x, SR)
    assert got == pytest.approx(6.0, abs=0.05)
    assert got == pytest.approx(reference_distance(x * ramp, x), abs=TOL)


def test_one_changed_mel_bin(x):
    """A tone at the centre frequency of mel band 60 over broadband noise: the error sits in one mel
    bin (its neighbours' filters are zero at that frequency; only the window's main lobe leaks), so
    the RMS over 80 bins is that bin's error / sqrt(80), and a mean of absolute values would be
    sqrt(80) times smaller."""
    rng = np.random.default_rng(1)
    noise = (0.05 * rng.standard_normal(len(x))).astype(np.float32)
    centre = librosa.mel_frequencies(n_mels=N_MELS + 2, fmax=SR / 2)[1:-1][60]  # Slaney mel, as the filterbank
    tone = (0.05 * np.sin(2 * np.pi * centre * np.arange(len(x)) / SR)).astype(np.float32)
    truth, output = x + noise, x + noise + tone
    diff = reference_diff(output, truth, SR)
    per_bin = np.abs(diff).mean(axis=0)
    assert per_bin.argmax() == 60 and per_bin[60] > 10 * np.delete(per_bin, [59, 60, 61]).max()
    got = metrics.log_mel_distance(output, truth, SR)
    assert got == pytest.approx(reference_distance(output, truth), abs=TOL)
    assert got == pytest.approx(np.abs(diff[:, 60]).mean() / np.sqrt(N_MELS), rel=0.1)


def test_silence_against_music_is_the_floor(x):
    """Silence is floored at 80 dB below the truth's maximum mel bin: each bin's error is its level
    above that floor. The floor is relative to the truth, so the value does not change with the
    truth's level, and anything 100 dB down is silence too."""
    silence = np.zeros_like(x)
    got = metrics.log_mel_distance(silence, x, SR)
    p_ref = reference_mel_power(x, SR, len(x))
    above_floor = np.maximum(10 * np.log10(p_ref / p_ref.max()) + FLOOR_DB, 0)  # the exact per-bin error
    expected = float(np.sqrt((above_floor**2).mean(axis=1)).mean())
    assert got == pytest.approx(expected, abs=TOL)
    assert metrics.log_mel_distance(silence, 4 * x, SR) == pytest.approx(got, abs=TOL)
    assert metrics.log_mel_distance(x * 1e-5, x, SR) == got  # every bin below the floor: the same numbers
    # 70 dB down: the loudest bins are above the floor (10 dB of them), the rest floored
    quiet = (x * 10 ** (-70 / 20)).astype(np.float32)
    assert metrics.log_mel_distance(quiet, x, SR) == pytest.approx(reference_distance(quiet, x), abs=TOL)


def test_stereo_is_the_mean_of_the_channels(x):
    y = music_like(2 * SR, seed=2)
    a, b = x * 0.5, y * 2.0
    got = metrics.log_mel_distance(np.stack([a, b]), np.stack([x, y]), SR)
    assert got == pytest.approx((reference_distance(a, x) + reference_distance(b, y)) / 2, abs=TOL)
