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


@contextmanager
def adaptive_threads(enabled: bool = True):
    """Within the block: a function that sets torch's thread count for the next piece of work
    (:class:`LoadWatch`, never above the count set on entry); the count set on entry is restored
    on exit. ``enabled`` False: the function leaves the count as it is."""
    ceiling = torch.get_num_threads()
    watch = LoadWatch(ceiling) if enabled and ceiling > 1 else None

    def adjust() -> int:
        if watch is None:
            return ceiling
        n = watch.threads()
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        return n

    try:
        yield adjust
    finally:
        if torch.get_num_threads() != ceiling:
            torch.set_num_threads(ceiling)
