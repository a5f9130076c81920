"""Truncation checks on audio containers, from their headers.

libsndfile opens a truncated file without complaint in most formats: it counts the frames that
are there (WAV, AIFF, W64, RF64, AU, CAF) or the last complete Ogg page (Vorbis, Opus), so a cut
download would be stretched silently into a shorter file. Each container announces how much
audio it holds; :func:`truncation` compares that with what the file holds. FLAC needs no check
(its decoder reports the lost frames); MP3 and headerless data announce nothing.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
W64_DATA = b"data\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"
UNKNOWN32 = 0xFFFFFFFF  # "size unknown" in a streamed WAV, RF64 or AU header
MAX_CHUNKS = 10000  # a corrupt header must not loop for ever


def truncation(path: str | os.PathLike) -> str | None:
    """What is missing from ``path``, as words for an error message, or None when the file is
    whole or its container announces no length."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16:
            return None
        if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
            return _riff(f, size, "little" if head[:4] == b"RIFF" else "big", None)
        if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
            return _riff(f, size, "little", _ds64(f))
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _chunks(f, size, 12, b"SSND", ">I", 8, 2)
        if head == W64_RIFF:
            return _w64(f, size)
        if head[:4] == b"caff":
            return _chunks(f, size, 8, b"data", ">q", 12, 1, unknown=-1)
        if head[:4] in (b".snd", b"dns."):
            order = ">" if head[:4] == b".snd" else "<"
            offset, length = struct.unpack(order + "II", head[4:12])
            return _short(length, size - offset) if length != UNKNOWN32 else None
        if head[:4] == b"OggS":
            return _ogg(f, size)
    return None


def _short(announced: int, held: int) -> str | None:
    if held < announced:
        return f"its header announces {announced} bytes of audio, the file holds {max(held, 0)}"
    return None


def _riff(f, size: int, order: str, ds64: int | None) -> str | None:
    """WAV chunks from byte 12: the 'data' chunk's size against the bytes after it (RF64 and
    BW64 keep a size over 4 GiB in their 'ds64' chunk)."""
    pos = 12
    for _ in range(MAX_CHUNKS):
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        length = int.from_bytes(chunk[4:8], order)
        if chunk[:4] == b"data":
            if length == UNKNOWN32:
                if ds64 is None:  # a streamed WAV of unknown length
                    return None
                length = ds64
            return _short(length, size - pos - 8)
        pos += 8 + length + (length & 1)
    return None


def _ds64(f) -> int | None:
    f.seek(12)
    chunk = f.read(28)
    if len(chunk) < 28 or chunk[:4] != b"ds64":
        return None
    return struct.unpack("<Q", chunk[16:24])[0]


def _chunks(
    f, size: int, pos: int, data_id: bytes, fmt: str, head: int, align: int, unknown: int | None = None
) -> str | None:
    """Chunks of ``head`` bytes (4-byte id, then a size packed as ``fmt``) from ``pos``; the
    ``data_id`` chunk's size against the bytes after its header (AIFF's SSND, CAF's data)."""
    n = struct.calcsize(fmt)
    for _ in range(MAX_CHUNKS):
        f.seek(pos)
        chunk = f.read(head)
        if len(chunk) < head:
            return None
        length = struct.unpack(fmt, chunk[4 : 4 + n])[0]
        if chunk[:4] == data_id:
            return None if length == unknown else _short(length, size - pos - head)
        if length < 0:
            return None
        pos += head + length + (length % align if align > 1 else 0)
    return None


def _w64(f, size: int) -> str | None:
    """Sony Wave64: 16-byte GUIDs, 8-byte sizes that count the 24-byte chunk header, 8-byte alignment."""
    pos = 40  # the riff GUID and size, then the wave GUID
    for _ in range(MAX_CHUNKS):
        f.seek(pos)
        chunk = f.read(24)
        if len(chunk) < 24:
            return None
        length = struct.unpack("<Q", chunk[16:24])[0]
        if chunk[:16] == W64_DATA:
            return _short(length - 24, size - pos - 24)
        if length < 24:
            return None
        pos += length + (-length % 8)
    return None


def _ogg(f, size: int) -> str | None:
    """An Ogg stream ends with a whole page that carries the end-of-stream flag."""
    tail_start = max(0, size - 65536)  # a page is at most 65307 bytes
    f.seek(tail_start)
    tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        page = tail[at:]
        if len(page) >= 27 and page[4] == 0:  # version 0: a page header, not audio bytes that look like one
            n_segments = page[26]
            if len(page) < 27 + n_segments:
                return "its last Ogg page is cut short"
            length = 27 + n_segments + sum(page[27 : 27 + n_segments])
            if len(page) < length:
                return "its last Ogg page is cut short"
            if not page[5] & 0x04:
                return "its Ogg stream ends without the end-of-stream mark"
            return None
        at = tail.rfind(b"OggS", 0, at)
    return None
