"""Audio files in and out (soundfile), with the checks every entry point shares."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .checkpoint import partial_path
from .errors import AudioError

FORMATS = {f".{ext.lower()}": ext for ext in sf.available_formats()}  # extension -> soundfile format


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
    with AudioReader(path) as reader:
        data = reader.read(0, reader.frames).numpy()
    return validate(data, reader.name), reader.sample_rate


class AudioReader:
    """An audio file read in blocks: ``read(lo, hi)`` -> float32 tensor [C, hi - lo], zeros outside
    the file. Every block is checked for NaN/Inf; a file that ends before its header says raises."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu"):
        path = Path(path)
        self.path, self.name, self.device = path, f"audio file {path}", torch.device(device)
        if not path.exists():
            raise AudioError(f"input file not found: {path}")
        if path.is_dir():
            raise AudioError(f"input is a folder, not an audio file: {path}")
        try:
            _check_wav_length(path)
            self.file = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise AudioError(f"cannot read audio file {path}: {e}") from None
        self.frames, self.channels, self.sample_rate = self.file.frames, self.file.channels, self.file.samplerate
        self.format, self.subtype = self.file.format, self.file.subtype
        if self.frames <= 0:
            self.close()
            raise AudioError(f"{self.name} is empty (no samples)")
        if self.channels > 64:
            self.close()
            raise AudioError(f"{self.name} has {self.channels} channels; at most 64 are supported")

    @property
    def shape(self) -> tuple[int, int]:
        return self.channels, self.frames

    def read(self, lo: int, hi: int) -> torch.Tensor:
        out = torch.zeros(self.channels, hi - lo, device=self.device)
        a, b = max(lo, 0), min(hi, self.frames)
        if b <= a:
            return out
        try:
            self.file.seek(a)
            data = self.file.read(b - a, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise AudioError(f"cannot read {self.name}: {e}") from None
        if data.shape[0] < b - a:
            raise AudioError(f"{self.name} is truncated: it ends at sample {a + data.shape[0]}, "
                             f"its header announces {self.frames}")
        if not np.isfinite(data).all():
            raise AudioError(f"{self.name} contains NaN or Inf samples")
        out[:, a - lo:b - lo] = torch.from_numpy(data.T).to(self.device)
        return out

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AudioWriter:
    """Writes an audio file block by block (format from the extension); the file appears at
    ``path`` only when the writer closes without an error. ``like`` (an AudioReader) keeps the
    input's sample format (16/24-bit, float) when the output has the same container format."""

    def __init__(self, path: str | os.PathLike, sr: int, channels: int, like: "AudioReader | None" = None):
        self.path = check_output_path(path)
        self.sr, self.channels = sr, channels
        fmt = FORMATS[self.path.suffix.lower()]
        self.subtype = like.subtype if like is not None and like.format == fmt else None
        if self.subtype is not None and not sf.check_format(fmt, self.subtype):
            self.subtype = None
        self.clip = (self.subtype or sf.default_subtype(fmt) or "") not in ("FLOAT", "DOUBLE")

    def __enter__(self) -> "AudioWriter":
        tmp = None
        try:
            tmp = partial_path(self.path)
            self.file = sf.SoundFile(str(tmp), "w", self.sr, self.channels, subtype=self.subtype)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise AudioError(f"cannot write {self.path}: {e}") from None
        self.tmp = tmp
        return self

    def write(self, chunk: np.ndarray) -> None:
        """chunk: float [C, k]."""
        chunk = np.clip(chunk, -1, 1) if self.clip else chunk
        try:
            self.file.write(np.ascontiguousarray(chunk.T))
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise AudioError(f"cannot write {self.path}: {e}") from None

    def __exit__(self, kind, error, tb) -> None:
        try:
            self.file.close()
            if kind is None:
                os.replace(self.tmp, self.path)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            if kind is None:
                raise AudioError(f"cannot write {self.path}: {e}") from None
        finally:
            self.tmp.unlink(missing_ok=True)


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
    with AudioWriter(path, sr, np.asarray(wave).shape[0]) as writer:
        writer.write(np.asarray(wave))
