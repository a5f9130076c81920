"""WAV over pipes, as it arrives: a reader of standard input and a writer to standard output.

The real-time mode (``gan-stretch stretch - - --realtime``) stretches audio while it is still
arriving and writes the output while later input is still to come. libsndfile (soundfile) and
the standard library's ``wave`` read a WAV file's header lengths and patch them at close, which a
pipe cannot do; sox and other streaming tools write the lengths as 0xFFFFFFFF ("unknown") and
read to the end of the stream. This module does the same: PCM (8, 16, 24, 32 bit) and float
(32, 64 bit) WAV, plain or WAVE_FORMAT_EXTENSIBLE.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from gan_stretch.errors import AudioError

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
UNKNOWN = 0xFFFFFFFF


class WavReader:
    """Reads a WAV stream from a file descriptor in the pieces that arrive (``os.read``: what
    the pipe holds, without waiting for a whole block)."""

    def __init__(self, fd: int, name: str = "standard input"):
        self.fd, self.name, self.pending = fd, name, b""
        self.left = None  # data bytes still to come (None: to the end of the stream)
        self._header()

    def _take(self, n: int) -> bytes:
        while len(self.pending) < n:
            got = os.read(self.fd, max(65536, n - len(self.pending)))
            if not got:
                raise AudioError(f"cannot read {self.name}: it ended inside the WAV header")
            self.pending += got
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def _header(self) -> None:
        try:
            head = self._take(12)
        except AudioError:
            if not self.pending or not b"RIFF".startswith(self.pending[:4]):
                raise AudioError(
                    f"cannot read {self.name} as it arrives: it is not WAV (--realtime reads WAV)"
                ) from None
            raise
        if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise AudioError(f"cannot read {self.name} as it arrives: it is not WAV (--realtime reads WAV)")
        fmt = None
        while True:
            kind, size = struct.unpack("<4sI", self._take(8))
            if kind == b"fmt ":
                body = self._take(size + (size & 1))
                tag, channels, sr = struct.unpack("<HHI", body[:8])
                bits = struct.unpack("<H", body[14:16])[0]
                if tag == EXTENSIBLE and size >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, channels, sr, bits)
            elif kind == b"data":
                if fmt is None:
                    raise AudioError(f"cannot read {self.name}: its WAV data comes before its format")
                self.left = None if size in (0, UNKNOWN) or size >= 0x7FFFF000 else size
                if self.left is not None:  # data bytes read with the header count too
                    self.pending = self.pending[: self.left]
                    self.left -= len(self.pending)
                break
            else:
                self._take(size + (size & 1))
        tag, channels, sr, bits = fmt
        kinds = {
            (PCM, 8): "u1",
            (PCM, 16): "<i2",
            (PCM, 24): "i3",
            (PCM, 32): "<i4",
            (FLOAT, 32): "<f4",
            (FLOAT, 64): "<f8",
        }
        if (tag, bits) not in kinds or channels < 1:
            raise AudioError(f"cannot read {self.name}: WAV format {tag} with {bits}-bit samples is not PCM or float")
        self.kind, self.channels, self.sample_rate, self.bits = kinds[tag, bits], channels, sr, bits
        self.frame_bytes = channels * bits // 8

    def read(self) -> np.ndarray | None:
        """The whole frames that have arrived: float32 [C, k] (k may be 0), or None at the end."""
        new = b""
        if self.left != 0:
            new = os.read(self.fd, 1 << 16)
            if self.left is not None:
                new = new[: self.left]
                self.left -= len(new)
            if not new:
                self.left = 0  # the stream has ended
        data = self.pending + new
        if not new and len(data) < self.frame_bytes:  # nothing more comes (a trailing part frame is dropped)
            return None
        whole = len(data) - len(data) % self.frame_bytes
        raw, self.pending = data[:whole], data[whole:]
        return decode(raw, self.kind, self.channels)


def decode(raw: bytes, kind: str, channels: int) -> np.ndarray:
    """Interleaved WAV samples -> float32 [C, k] in [-1, 1]."""
    if kind == "i3":  # 24-bit: three bytes, little-endian, into the top of an int32
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)).astype(np.float32) / 2**31
    elif kind == "u1":
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) / 128
    else:
        x = np.frombuffer(raw, dtype=kind).astype(np.float32)
        if kind[1] == "i":
            x /= 2 ** (8 * int(kind[2:]) - 1)
    return x.reshape(-1, channels).T


class WavWriter:
    """Writes a WAV stream to a binary file (standard output) as chunks come: the header says
    "length unknown"; 16-bit PCM, 24-bit PCM or 32-bit float. Integer formats clip at full
    scale (``clipped`` counts the samples that did)."""

    def __init__(self, out, sample_rate: int, channels: int, bits: int = 16):
        if bits not in (16, 24, 32):
            raise ValueError(f"a WAV stream is written as 16-bit, 24-bit or 32-bit float samples, not {bits}-bit")
        self.out, self.channels, self.bits = out, channels, bits
        self.clipped, self.frames = 0, 0
        tag = FLOAT if bits == 32 else PCM
        block = channels * bits // 8
        fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block, block, bits)
        out.write(b"RIFF" + struct.pack("<I", UNKNOWN) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        out.write(b"data" + struct.pack("<I", UNKNOWN))
        out.flush()

    def write(self, chunk: np.ndarray) -> None:
        """chunk: float [C, k]."""
        if not chunk.shape[-1]:
            return
        x = np.ascontiguousarray(chunk.T)
        if self.bits == 32:
            data = x.astype("<f4").tobytes()
        else:
            over = np.abs(x) > 1
            self.clipped += int(over.sum())
            scale = 2 ** (self.bits - 1)
            q = np.clip(np.round(x * scale), -scale, scale - 1).astype("<i4")
            data = q.astype("<i2").tobytes() if self.bits == 16 else q.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        self.out.write(data)
        self.out.flush()
        self.frames += x.shape[0]
