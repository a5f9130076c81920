"""How many torch threads a stretch uses on the CPU: only the cores other processes leave idle.

torch's intra-op threads (OpenMP) meet at a barrier after every operation. When another process
holds one of the cores, the thread that shares it arrives late at every barrier while the others
wait: on this project's 2-core machine a 30 s stereo stretch took five times as long on two
threads with one core busy as on one thread (2.58 s against 0.52 s). :class:`LoadWatch` measures,
between blocks of the stretch, how much of the process's CPUs other processes used (``/proc/stat``
less this process's own CPU time), and the next block runs on the cores left idle: on a quiet
machine all the threads torch was given, on a busy one fewer, down to one.
"""

from __future__ import annotations

import contextvars
import os
import time
from contextlib import contextmanager

import torch

MIN_WINDOW_S = 0.05  # a shorter window says too little at the kernel's 10 ms accounting: keep the last choice
SPARE = 0.25  # a core counts as idle when others used at most 1 - SPARE of it (rounding of the idle cores)


def _cpus() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _busy_seconds(cpus: list[int]) -> float | None:
    """Seconds the CPUs ``cpus`` spent busy since boot (user, nice, system, irq, softirq and
    steal time; not idle or I/O wait), from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted, ticks = {f"cpu{c}" for c in cpus}, 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name in wanted:
            v = [int(x) for x in rest.split()]
            ticks += v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
            wanted.discard(name)
    return None if wanted else ticks / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class LoadWatch:
    """Threads for the next piece of work: the idle cores among this process's CPUs, measured
    over the time since the last call, at most ``ceiling`` and at least one.

    Where /proc/stat is missing (macOS, Windows) every call returns ``ceiling``."""

    def __init__(self, ceiling: int):
        self.ceiling = max(1, int(ceiling))
        self.cpus = _cpus()
        self.last = self._sample()
        self.choice = self.ceiling
        if self.last is not None and self.ceiling > 1 and hasattr(os, "getloadavg"):
            # before anything is measured: the one-minute load average (the processes running
            # or waiting for a core) as a first estimate of the busy cores
            self.choice = self._fit(len(self.cpus) - os.getloadavg()[0])

    def _sample(self):
        if self.cpus is None or self.ceiling == 1:
            return None
        busy = _busy_seconds(self.cpus)
        return None if busy is None else (time.perf_counter(), busy, _own_seconds())

    def _fit(self, idle: float) -> int:
        return max(1, min(self.ceiling, int(idle + SPARE)))

    def threads(self) -> int:
        """The thread count for the next piece of work."""
        now = self._sample()
        if now is None:
            return self.choice
        wall = now[0] - self.last[0]
        if wall >= MIN_WINDOW_S:
            others = max(0.0, (now[1] - self.last[1]) - (now[2] - self.last[2])) / wall
            self.choice = self._fit(len(self.cpus) - others)
            self.last = now
        return self.choice


_controller = None
_active: contextvars.ContextVar = contextvars.ContextVar("gan_stretch_adaptive_threads", default=None)


def _blas_limit(n: int):
    """Sets the BLAS libraries' threads (numpy's OpenBLAS: the decays' least squares) to ``n``;
    returns what restores the counts before (threadpoolctl), or None where none is found."""
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        blas = _controller.select(user_api="blas")
        return blas.limit(limits=n) if len(blas) else None
    except Exception:  # threadpoolctl cannot inspect this process: leave BLAS as it is
        return None


@contextmanager
def adaptive_threads(enabled: bool = True):
    """Within the block: a function that sets torch's thread count (and the BLAS libraries') for
    the next piece of work (:class:`LoadWatch`, never above torch's count on entry); the counts
    set on entry are restored on exit. ``enabled`` False: the function leaves them as they are.
    Nested, the outer block's function serves the inner one (one watch per stretch)."""
    outer = _active.get()
    if outer is not None:  # within a stretch that already adapts (a block loop inside stretch()): the same
        yield outer
        return
    ceiling = torch.get_num_threads()
    watch = LoadWatch(ceiling) if enabled and ceiling > 1 else None
    restore, blas_threads = None, None

    def adjust() -> int:
        nonlocal restore, blas_threads
        if watch is None:
            return ceiling
        n = watch.threads()
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        if n != blas_threads:  # BLAS threads wait on a busy core as OpenMP's do
            limiter = _blas_limit(n)
            restore = restore or limiter
            blas_threads = n
        return n

    token = _active.set(adjust)
    try:
        yield adjust
    finally:
        _active.reset(token)
        if torch.get_num_threads() != ceiling:
            torch.set_num_threads(ceiling)
        if restore is not None:
            restore.restore_original_limits()
