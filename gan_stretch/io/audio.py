"""Audio files in and out (soundfile), with the checks every entry point shares."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gan_stretch.errors import AudioError
from gan_stretch.io.checkpoint import partial_path, target_mode
from gan_stretch.io.containers import truncation

FORMATS = {f".{ext.lower()}": ext for ext in sf.available_formats()}  # extension -> soundfile format
FORMATS.update({".aif": "AIFF", ".aifc": "AIFF", ".oga": "OGG", ".snd": "AU"})  # the usual other names
SUBTYPES = {}  # extension -> the sample format it implies
if "OPUS" in sf.available_subtypes("OGG"):
    FORMATS[".opus"], SUBTYPES[".opus"] = "OGG", "OPUS"
# formats libsndfile writes that do not read back as written
UNWRITABLE = {
    "RAW": "raw audio has no header, so it keeps neither the sample rate nor the sample format",
    "SD2": "Sound Designer II keeps its header in a separate resource-fork file (._NAME)",
}
LOSSY = ("VORBIS", "OPUS", "MPEG_LAYER_III")  # their decoders may pad the frame count
STDIN_NAMES, STDOUT_NAMES = ("-", "/dev/stdin"), ("-", "/dev/stdout")
STDIN_FORMATS = ("WAV", "WAVEX", "FLAC")  # recognised from their first bytes; others need --input-format
SILENT_PEAK = 1e-7  # -140 dBFS: below 24-bit resolution, nothing audible to stretch
HIGH_RES = ("PCM_24", "PCM_32", "FLOAT", "DOUBLE")  # sample formats finer than 16-bit
# integer PCM -> float as soundfile reads it: divided by the magnitude of the most negative value
PCM_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


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
        raise AudioError(
            f"{what} has {wave.shape[0]} channels; expected [channels, samples] with at most 64 "
            "channels (is it transposed?)"
        )
    if wave.shape[0] > wave.shape[1]:
        raise AudioError(
            f"{what} has shape {tuple(wave.shape)}: more channels than samples, so it is probably "
            "[samples, channels]; pass [channels, samples] (x.T)"
        )
    if np.issubdtype(wave.dtype, np.integer):
        if wave.dtype == np.uint8:  # 8-bit WAV: unsigned, centred on 128
            wave = (wave.astype(np.float32) - 128) / 128
        elif wave.dtype in PCM_SCALE:
            wave = (wave / PCM_SCALE[wave.dtype]).astype(np.float32)
        else:
            raise AudioError(
                f"{what} has dtype {wave.dtype}, which is no PCM sample format; pass float "
                "samples in [-1, 1] or int8/int16/int32/uint8 PCM"
            )
    wave = wave.astype(np.float32, copy=False)
    # two reductions, no temporaries the size of the signal: a NaN makes both NaN, an Inf one of them
    lo, hi = float(wave.min()), float(wave.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise AudioError(f"{what} contains NaN or Inf samples")
    peak = max(-lo, hi)
    if peak == 0:
        raise AudioError(f"{what} is silent (every sample is zero)")
    if peak <= SILENT_PEAK:
        raise AudioError(
            f"{what} is silent: its loudest sample is {peak:.2g} ({20 * np.log10(peak):.0f} dBFS), "
            f"below {20 * np.log10(SILENT_PEAK):.0f} dBFS"
        )
    return wave


def _truncation(path: Path) -> str | None:
    try:
        return truncation(path)
    except OSError:
        return None


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
            self.file = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            missing = _truncation(path)
            if missing:
                raise AudioError(f"audio file {path} is truncated: {missing}") from None
            raise AudioError(f"cannot read audio file {path}: {e}") from None
        self.frames, self.channels, self.sample_rate = self.file.frames, self.file.channels, self.file.samplerate
        self.format, self.subtype = self.file.format, self.file.subtype
        missing = _truncation(path)
        if missing:
            self.close()
            raise AudioError(
                f"{self.name} is truncated: it ends at sample {self.frames} "
                f"({self.frames / self.sample_rate:.2f} s); {missing}"
            )
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
            raise AudioError(
                f"{self.name} is truncated: it ends at sample {a + data.shape[0]}, its header announces {self.frames}"
            )
        if not np.isfinite(data).all():
            raise AudioError(f"{self.name} contains NaN or Inf samples")
        out[:, a - lo : b - lo] = torch.from_numpy(data.T).to(self.device)
        return out

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AudioWriter:
    """Writes an audio file block by block (format from the extension); the file appears at
    ``path`` only when the writer closes without an error, after it was read back and found
    whole. ``like`` (an AudioReader) keeps the input's sample format (16/24-bit, float) when the
    output has the same container format. Integer formats clip at full scale: ``clipped`` counts
    the samples that did and ``peak`` is the largest magnitude asked for. ``clobber=False``
    refuses to replace an existing file, also one that appears while the writer works."""

    def __init__(
        self, path: str | os.PathLike, sr: int, channels: int, like: AudioReader | None = None, clobber: bool = True
    ):
        self.path = check_output_path(path)
        self.stdout = is_stdout(self.path)
        self.sr, self.channels, self.clobber = sr, channels, clobber
        self.format, self.subtype = output_format(self.path, like)
        check_format(self.path, sr, channels, self.subtype)
        self.clip = (self.subtype or sf.default_subtype(self.format) or "") not in ("FLOAT", "DOUBLE")
        self.frames, self.clipped, self.peak = 0, 0, 0.0

    def __enter__(self) -> AudioWriter:
        if not self.stdout and not self.clobber and self.path.exists():
            raise AudioError(f"{self.path} exists (not overwritten: --no-clobber)")
        tmp = None
        try:
            if self.stdout:  # the whole file first: a WAV header needs the length, and the pipe gets only whole files
                fd, name = tempfile.mkstemp(prefix="gan-stretch-stdout-", suffix=".wav")
                os.close(fd)
                tmp = Path(name)
            else:
                tmp = partial_path(self.path)
            self.file = sf.SoundFile(str(tmp), "w", self.sr, self.channels, subtype=self.subtype, format=self.format)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise AudioError(f"cannot write {self.path}: {e}") from None
        self.tmp = tmp
        return self

    def write(self, chunk: np.ndarray) -> None:
        """chunk: float [C, k]."""
        if not np.isfinite(chunk).all():
            raise AudioError(
                f"cannot write {self.path}: the stretched audio contains NaN or Inf samples (a broken model?)"
            )
        if chunk.size:
            self.peak = max(self.peak, float(np.abs(chunk).max()))
        if self.clip:
            over = np.abs(chunk) > 1
            if over.any():
                self.clipped += int(over.sum())
                chunk = np.clip(chunk, -1, 1)
        try:
            self.file.write(np.ascontiguousarray(chunk.T))
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise AudioError(f"cannot write {self.path}: {e}") from None
        self.frames += chunk.shape[-1]

    def __exit__(self, kind, error, tb) -> None:
        try:
            self.file.close()
            if kind is None and self.stdout:
                self._verify()
                with open(self.tmp, "rb") as f:
                    shutil.copyfileobj(f, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            elif kind is None:
                self._verify()
                os.chmod(self.tmp, target_mode(self.path))
                if self.clobber:
                    os.replace(self.tmp, self.path)
                else:
                    _link_new(self.tmp, self.path)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            if kind is None:
                raise AudioError(f"cannot write {self.path}: {e}") from None
        finally:
            self.tmp.unlink(missing_ok=True)

    def _verify(self) -> None:
        """The written file reads back with the rate, channels and length written (a format that
        cannot hold them would otherwise pass unnoticed)."""
        try:
            info = sf.info(str(self.tmp))
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"cannot write {self.path}: the written file does not read back ({e})") from None
        lossy = (self.subtype or sf.default_subtype(self.format)) in LOSSY
        got = (info.samplerate, info.channels) + (() if lossy else (info.frames,))
        want = (self.sr, self.channels) + (() if lossy else (self.frames,))
        if got != want:
            raise AudioError(
                f"cannot write {self.path}: it reads back as {info.samplerate} Hz, {info.channels} "
                f"channel(s), {info.frames} frames instead of {self.sr} Hz, {self.channels}, "
                f"{self.frames}"
            )


def _link_new(tmp: Path, path: Path) -> None:
    """Moves ``tmp`` to ``path`` unless ``path`` exists (a hard link fails on an existing name,
    where a rename would replace it)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise AudioError(f"{path} exists (not overwritten: --no-clobber)") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise AudioError(f"{path} exists (not overwritten: --no-clobber)") from None
        os.replace(tmp, path)


def is_stdout(path) -> bool:
    """``-`` or ``/dev/stdout`` as an output: WAV written to standard output."""
    return str(path) in STDOUT_NAMES


def is_stdin(path) -> bool:
    """``-`` or ``/dev/stdin`` as an input: audio read from standard input."""
    return str(path) in STDIN_NAMES


def output_format(path: Path, like: AudioReader | None = None) -> tuple[str, str | None]:
    """(soundfile format, sample format or None for the format's default) of an output: from the
    extension (standard output: WAV); with ``like`` (the input), its sample format where the
    output's container holds it, and finer than 16-bit input (24-bit, float) at least 24-bit in a
    container that holds no float (FLAC) rather than the container's 16-bit default."""
    suffix = "" if is_stdout(path) else path.suffix.lower()
    fmt = "WAV" if is_stdout(path) else FORMATS[suffix]
    if suffix in SUBTYPES:
        return fmt, SUBTYPES[suffix]
    if like is None:
        return fmt, None
    if like.format == fmt and sf.check_format(fmt, like.subtype):
        return fmt, like.subtype
    if like.subtype in HIGH_RES and sf.default_subtype(fmt) == "PCM_16":  # a lossless PCM container
        for subtype in (like.subtype, "PCM_24"):
            if sf.check_format(fmt, subtype):
                return fmt, subtype
    return fmt, None


def check_format(path: Path, sr: int, channels: int, subtype: str | None = None) -> None:
    """Writes a short file of this format, rate and channel count in memory and reads it back:
    raises AudioError naming the cause (a channel limit, a fixed sample rate, a format that keeps
    its header elsewhere) before any work, instead of libsndfile's "Format not recognised"."""
    fmt = "WAV" if is_stdout(path) else FORMATS[path.suffix.lower()]
    name = "standard output (WAV)" if is_stdout(path) else f"{path.suffix.lower()} ({fmt})"
    if fmt in UNWRITABLE:
        raise AudioError(f"cannot write {path}: {UNWRITABLE[fmt]}; use .wav, .flac or another format")

    def probe(n_channels: int) -> tuple[int, int] | str:
        buf = io.BytesIO()
        try:
            with sf.SoundFile(buf, "w", sr, n_channels, subtype=subtype, format=fmt) as f:
                f.write(np.zeros((64, n_channels), np.float32))
            buf.seek(0)
            with sf.SoundFile(buf) as f:
                return f.samplerate, f.channels
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
            text = str(e).split(": ", 1)[-1] if "Error opening" in str(e) else str(e)
            return text.removeprefix("Error : ")

    got = probe(channels)
    if isinstance(got, str):
        fewer = [n for n in (8, 6, 4, 2, 1) if n < channels and not isinstance(probe(n), str)]
        if fewer:
            raise AudioError(
                f"cannot write {path}: {name} files hold at most {fewer[0]} channel(s), the audio has {channels}"
            )
        raise AudioError(f"cannot write {path} at {sr} Hz: {got}")
    if got != (sr, channels):
        raise AudioError(
            f"cannot write {path}: {name} files cannot store {sr} Hz (it reads back as "
            f"{got[0]} Hz); use .wav, .flac or another format"
        )


def check_output_path(path: str | os.PathLike, inputs: tuple = (), create_folder: bool = False) -> Path:
    """Checks before any work that ``path`` can be written: known format, not an input, folder
    writable (``-`` and ``/dev/stdout``: WAV on standard output)."""
    path = Path(path)
    if is_stdout(path):
        return path
    if path.is_dir():
        raise AudioError(f"cannot write {path}: it is a folder; give a file name such as {path / 'out.wav'}")
    if path.suffix.lower() not in FORMATS:
        if not path.suffix:
            raise AudioError(
                f"cannot write {path}: the name has no extension to choose the audio format by "
                "(add .wav, .flac, ...; '-' writes WAV to standard output)"
            )
        raise AudioError(
            f"cannot write {path}: unknown audio format {path.suffix!r} (use one of {', '.join(sorted(FORMATS))})"
        )
    if FORMATS[path.suffix.lower()] in UNWRITABLE:
        raise AudioError(
            f"cannot write {path}: {UNWRITABLE[FORMATS[path.suffix.lower()]]}; use .wav, .flac or another format"
        )
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


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000


def check_sample_rate(sr, what: str = "input audio") -> int:
    """The sample rates stretched: 8 to 192 kHz (the model's band is 11 kHz wide; below 8 kHz
    its frames would be long smears, above 192 kHz a frame would be over 17,000 samples long)."""
    if isinstance(sr, (float, np.floating)) and float(sr).is_integer():
        sr = int(sr)  # 22050.0, as a float field or a division gives it
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
        raise AudioError(f"sample rate must be a whole number of Hz, got {sr!r}")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{what} has sample rate {sr} Hz; sample rates from {MIN_SAMPLE_RATE} to "
            f"{MAX_SAMPLE_RATE} Hz are supported (resample it first)"
        )
    return int(sr)


def stdin_to_file(folder: str | os.PathLike, input_format: str | None = None) -> Path:
    """Standard input copied whole into ``folder`` (a file is read in blocks and seeked; a pipe is
    not): WAV or FLAC, recognised from its first bytes, or the format named by ``input_format``
    (an extension: ``ogg``, ``aiff``, ...). AudioError when nothing usable arrives."""
    if input_format is not None:
        ext = "." + input_format.lower().lstrip(".")
        if ext not in FORMATS:
            raise AudioError(
                f"--input-format {input_format!r} is no audio format gan-stretch reads "
                f"(use one of {', '.join(e[1:] for e in sorted(FORMATS))})"
            )
    if sys.stdin is None or sys.stdin.isatty():
        raise AudioError("input '-' reads standard input, which is a terminal: pipe audio into it (WAV or FLAC)")
    path = Path(folder) / f"stdin{ext if input_format else '.wav'}"
    with open(path, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f)
    if path.stat().st_size == 0:
        raise AudioError("standard input is empty: no audio arrived on the pipe")
    try:
        found = sf.info(str(path)).format
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        found = None
    want = FORMATS[ext] if input_format else None
    if found is None or (want is None and found not in STDIN_FORMATS):
        raise AudioError(
            "cannot read standard input: it is not WAV or FLAC audio"
            + (f" (it reads as {found}; pass --input-format to read it)" if found else "")
        )
    if want is not None and found != want and not (want == "WAV" and found == "WAVEX"):
        raise AudioError(f"standard input is {found} audio, not {input_format} (--input-format)")
    return path
