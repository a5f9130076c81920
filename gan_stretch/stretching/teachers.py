"""Classical stretchers behind one signature: ``f(wave [C, N], sr, rate) -> [C, about N / rate]``.

Each returns what the stretcher itself produced; ``get(name)`` wraps one so that its output has
exactly round(N / rate) samples (cut or zero-padded), as training targets need.

They are the teachers for recorded music (which has no true-tempo ground truth) and the
baselines the benchmark compares against.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from gan_stretch.errors import GanStretchError


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis to ``n`` samples."""
    if wave.shape[-1] >= n:
        return wave[..., :n]
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, n - wave.shape[-1])])


def out_length(n: int, rate: float) -> int:
    return max(1, int(round(n / rate)))


def phase_vocoder(wave, sr, rate):
    """librosa's phase vocoder (n_fft 2048, hop 512)."""
    import librosa

    return librosa.effects.time_stretch(wave, rate=rate)


def _rubberband(wave, sr, rate, engine: str):
    if shutil.which("rubberband") is None:
        raise GanStretchError("rubberband is not installed (apt-get install rubberband-cli)")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(str(src), wave.T, sr, subtype="FLOAT")
        cmd = ["rubberband", engine, "-q", "--tempo", repr(float(rate)), str(src), str(dst)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise GanStretchError(f"rubberband failed: {proc.stderr.strip()}")
        out, _ = sf.read(str(dst), dtype="float32", always_2d=True)
    return out.T


def rubberband_r2(wave, sr, rate):
    return _rubberband(wave, sr, rate, "-2")


def rubberband_r3(wave, sr, rate):
    return _rubberband(wave, sr, rate, "-3")


def wsola(wave, sr, rate):
    """audiotsm's WSOLA (its default frame length and tolerance)."""
    from audiotsm import wsola as make
    from audiotsm.io.array import ArrayReader, ArrayWriter

    writer = ArrayWriter(wave.shape[0])
    make(wave.shape[0], speed=rate).run(ArrayReader(wave.astype(np.float32)), writer)
    return writer.data.astype(np.float32)


def hptsm(wave, sr, rate):
    """pytsmod's harmonic-percussive separation TSM."""
    import pytsmod

    out = np.stack([np.asarray(pytsmod.hptsm(ch.astype(np.float64), 1.0 / rate)) for ch in wave])
    return out.astype(np.float32)


def resample(wave, sr, rate):
    """Plain resampling: the duration changes and so does the pitch (the floor of the benchmark)."""
    import librosa

    out = librosa.resample(wave, orig_sr=sr * rate, target_sr=sr, res_type="soxr_hq")
    return out.astype(np.float32)


TEACHERS = {
    "pv": phase_vocoder,
    "rubberband": rubberband_r3,
    "rubberband-r2": rubberband_r2,
    "rubberband-r3": rubberband_r3,
    "wsola": wsola,
    "hptsm": hptsm,
    "resample": resample,
}


def get(name: str, exact_length: bool = True):
    """The stretcher ``name``; with ``exact_length`` its output is cut or padded to round(N / rate)."""
    if name not in TEACHERS:
        raise GanStretchError(f"unknown teacher {name!r}; choose one of {', '.join(TEACHERS)}")
    raw = TEACHERS[name]
    if not exact_length:
        return raw
    return lambda wave, sr, rate: fit_length(raw(wave, sr, rate), out_length(wave.shape[-1], rate))
