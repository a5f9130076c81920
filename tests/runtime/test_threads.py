"""Thread use on a shared CPU (gan_stretch.runtime.threads) and the allocator setting (gan_stretch.runtime.memory).

A stretch runs each block on the cores other processes leave idle, never on more threads than
torch was given, and gives torch its thread count back afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_stretch import Stretcher
from gan_stretch.runtime import memory
from gan_stretch.runtime import threads as th


class FakeClock:
    """/proc/stat and this process's CPU time as a test sets them: ``others`` and ``own`` cores
    busy over each ``step`` seconds."""

    def __init__(self, monkeypatch, cpus=2):
        self.wall = self.busy = self.own = 0.0
        monkeypatch.setattr(th, "_cpus", lambda: list(range(cpus)))
        monkeypatch.setattr(th, "_busy_seconds", lambda c: self.busy)
        monkeypatch.setattr(th, "_own_seconds", lambda: self.own)
        monkeypatch.setattr(th.time, "perf_counter", lambda: self.wall)
        monkeypatch.setattr(th.os, "getloadavg", lambda: (0.0, 0.0, 0.0), raising=False)

    def advance(self, seconds: float, others: float, own: float) -> None:
        self.wall += seconds
        self.busy += seconds * (others + own)
        self.own += seconds * own


def test_threads_follow_the_idle_cores(monkeypatch):
    clock = FakeClock(monkeypatch, cpus=2)
    watch = th.LoadWatch(2)
    assert watch.threads() == 2  # nothing measured yet: the load average (idle) decides
    clock.advance(0.5, others=0.0, own=2.0)  # a quiet machine, this process on both cores
    assert watch.threads() == 2
    clock.advance(0.5, others=1.0, own=1.0)  # another process holds a core
    assert watch.threads() == 1
    clock.advance(0.5, others=0.6, own=1.0)  # more than a quarter of the second core is taken
    assert watch.threads() == 1
    clock.advance(0.01, others=0.0, own=1.0)  # too short a window to say: the last choice stays
    assert watch.threads() == 1
    clock.advance(0.5, others=0.1, own=1.0)  # the other process ended
    assert watch.threads() == 2


def test_threads_never_above_the_ceiling_nor_below_one(monkeypatch):
    clock = FakeClock(monkeypatch, cpus=8)
    watch = th.LoadWatch(3)
    clock.advance(1.0, others=0.0, own=1.0)
    assert watch.threads() == 3
    clock.advance(1.0, others=8.0, own=0.0)
    assert watch.threads() == 1


def test_the_load_average_is_the_first_estimate(monkeypatch):
    FakeClock(monkeypatch, cpus=2)
    monkeypatch.setattr(th.os, "getloadavg", lambda: (1.2, 1.0, 1.0), raising=False)
    assert th.LoadWatch(2).threads() == 1


def test_without_proc_stat_the_ceiling_is_kept(monkeypatch):
    monkeypatch.setattr(th, "_busy_seconds", lambda c: None)
    assert th.LoadWatch(2).threads() == 2


def test_a_stretch_gives_torch_its_thread_count_back(monkeypatch):
    chosen = []

    def one_thread(self):
        chosen.append(1)
        return 1

    monkeypatch.setattr(th.LoadWatch, "threads", one_thread)  # as on a busy machine
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen = []
    monkeypatch.setattr(th, "_blas_limit", lambda n, real=th._blas_limit: seen.append(blas_threads()) or real(n))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(2, user_api="blas"):
            outside = blas_threads()
            sr = 22050
            x = 0.3 * np.sin(2 * np.pi * 330 * np.arange(sr) / sr).astype(np.float32)
            Stretcher(device="cpu").stretch(x, sr, 1.5)
            assert torch.get_num_threads() == 2
            after = blas_threads()
            assert {k: after[k] for k in outside} == outside  # BLAS (numpy's) back to its count too
        assert chosen and seen  # the blocks asked how many threads to use, and set BLAS's
    finally:
        torch.set_num_threads(before)


def test_one_thread_given_is_one_thread_used(monkeypatch):
    monkeypatch.setattr(th.LoadWatch, "__init__", lambda *a: pytest.fail("a single thread needs no watch"))
    torch.set_num_threads(1)
    with th.adaptive_threads() as adjust:
        assert adjust() == 1
    assert torch.get_num_threads() == 1


def test_freed_memory_is_kept_for_reuse_on_linux():
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt is Linux only")
    Stretcher(device="cpu")
    assert memory.reuse_freed_memory() is True
