"""The C allocator's settings for the block loop on the CPU.

A streamed block allocates dozens of tensors of 10 to 60 MB (STFT frames, phases, magnitudes).
glibc's malloc serves blocks that large with fresh ``mmap`` pages and hands them back on free, so
every block paid the kernel to fault in and zero each page again: on a 3-minute stereo 44.1 kHz
stretch on one thread, 0.5 to 2.9 s of system time (300,000 to 500,000 page faults) beside 2.2 s
of computing, and more on a busy machine. :func:`reuse_freed_memory` asks malloc to keep freed
memory for the next allocation instead (``mallopt``): 63,000 faults and 0.1 s of system time.
Keeping more (all blocks up to 512 MB from the heap, 1 GB kept) cut the faults to 12,000 but
raised the peak of a 30-minute file from 1.81 GB to 1.97 GB: the blocks' tensors change size
from block to block and the heap fragments. With these thresholds the peak of
``eval/speed.py --memory 1 10 30`` is within 5 % of what it was without (1.16 / 1.60 / 1.81 GB
against 1.09 / 1.56 / 1.80 GB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 128 * 2**20  # allocations above this still get their own pages (a whole file's samples)
TRIM_THRESHOLD = 256 * 2**20  # freed memory kept at the top of the heap before any goes back to the system

_done = False


def reuse_freed_memory() -> bool:
    """Once per process, on Linux with glibc: large freed blocks stay with the process for reuse
    instead of going back to the system. Elsewhere (macOS, Windows, musl) nothing changes.
    Returns whether the setting is in force."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # glibc only
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
