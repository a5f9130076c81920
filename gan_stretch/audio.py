"""Audio files in and out (soundfile), with the checks every entry point shares."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from .checkpoint import atomic_write
from .errors import AudioError

FORMATS = {f".{ext.lower()}" for ext in sf.available_formats()}


def validate(wave: np.ndarray, what: str = "audio") -> np.ndarray:
    """Returns ``wave`` as float32 [C, N]; raises AudioError on empty, non-finite or silent audio."""
    wave = np.asarray(wave)
    if wave.ndim == 1:
        wave = wave[None]
    if wave.ndim != 2:
        raise AudioError(f"{what} must have shape [samples] or [channels, samples], got {tuple(wave.shape)}")
    if not np.issubdtype(wave.dtype, np.number) or np.iscomplexobj(wave):
        raise AudioError(f"{what} must hold real numbers, got dtype {wave.dtype}")
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise AudioError(f"{what} is empty (shape {tuple(wave.shape)})")
    if wave.shape[0] > 64:
        raise AudioError(f"{what} has {wave.shape[0]} channels; expected [channels, samples] with at most 64 "
                         "channels (is it transposed?)")
    wave = wave.astype(np.float32, copy=False)
    if not np.isfinite(wave).all():
        raise AudioError(f"{what} contains NaN or Inf samples")
    if not np.any(np.abs(wave) > 1e-7):
        raise AudioError(f"{what} is silent (every sample is zero)")
    return wave


def _check_wav_length(path: Path) -> None:
    """libsndfile reads a truncated WAV without complaint (it counts the frames that are there),
    so compare the data chunk's declared size with what the file holds."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return
    order = "little" if head[:4] == b"RIFF" else "big"
    pos = 12
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos + 4:pos + 8], order)
        if head[pos:pos + 4] == b"data":
            have = path.stat().st_size - (pos + 8)
            if size != 0xFFFFFFFF and have < size:  # 0xFFFFFFFF: streamed WAV of unknown length
                raise AudioError(f"audio file {path} is truncated: its header announces {size} bytes of "
                                 f"audio, the file holds {have}")
            return
        pos += 8 + size + (size & 1)


def load(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads any file soundfile reads -> (float32 [C, N], sample rate)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"input file not found: {path}")
    if path.is_dir():
        raise AudioError(f"input is a folder, not an audio file: {path}")
    try:
        _check_wav_length(path)
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise AudioError(f"cannot read audio file {path}: {e}") from None
    return validate(data.T, f"audio file {path}"), int(sr)


def check_output_path(path: str | os.PathLike, inputs: tuple = (), create_folder: bool = False) -> Path:
    """Checks before any work that ``path`` can be written: known format, not an input, folder writable."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise AudioError(f"cannot write {path}: unknown audio format {path.suffix!r} "
                         f"(use one of {', '.join(sorted(FORMATS))})")
    for inp in inputs:
        if Path(inp).exists() and path.exists() and os.path.samefile(inp, path):
            raise AudioError(f"output path {path} is the input file; choose another name")
    folder = path.parent if str(path.parent) else Path(".")
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AudioError(f"cannot create output folder {folder}: {e.strerror}") from None
    if not folder.is_dir():
        raise AudioError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise AudioError(f"output folder is not writable: {folder}")
    return path


def save(path: str | os.PathLike, wave: np.ndarray, sr: int) -> None:
    """Writes float [C, N] to ``path`` (format from the extension) atomically."""
    path = check_output_path(path)
    try:
        with atomic_write(path) as tmp:
            sf.write(str(tmp), np.clip(wave, -1, 1).T, sr)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise AudioError(f"cannot write {path}: {e}") from None
