"""What a training run logs: scalars averaged between log points, read back once per interval."""

from __future__ import annotations

import math

import torch


class Scalars:
    """What a run logs, averaged between log points without waiting for the device at each step.

    Tensors are summed where they are (on the device) and read back all at once at the next
    log point (one transfer per interval instead of several ``.item()`` per step); plain numbers
    (the learning rate) are logged as they are at that step. Losses handed to ``watch`` are kept
    per step and checked in the same transfer, so a non-finite one is reported with its step.
    """

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.watched: list[tuple[int, str, torch.Tensor]] = []

    def add(self, values: dict) -> None:
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().float()
                self.sums[k] = v if k not in self.sums else self.sums[k] + v
                self.counts[k] = self.counts.get(k, 0) + 1
            else:
                self.last[k] = float(v)

    def watch(self, step: int, name: str, loss: torch.Tensor) -> None:
        self.watched.append((step, name, loss.detach().float()))

    def read(self, averages: bool) -> tuple[dict[str, float], tuple[int, str, float] | None]:
        """(the averages since the last read, when ``averages``; the first non-finite watched
        loss as (step, name, value), or None), in one transfer from the device."""
        keys = list(self.sums) if averages else []
        parts = [self.sums[k] for k in keys] + [v for _, _, v in self.watched]
        values = torch.stack(parts).tolist() if parts else []
        means = {k: v / self.counts[k] for k, v in zip(keys, values)}
        bad = next(
            ((step, name, v) for (step, name, _), v in zip(self.watched, values[len(keys) :]) if not math.isfinite(v)),
            None,
        )
        self.watched = []
        if averages:
            means.update(self.last)
            self.sums, self.counts, self.last = {}, {}, {}
        return means, bad
