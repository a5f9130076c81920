"""eval/realtime.py: the paired table of the stream against offline, read from benchmark folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from eval import realtime as rt_eval


def write_set(folder: Path, shift: float, seed: int) -> None:
    """A benchmark folder: 10 pieces x 2 rates; the stream's log-mel is offline's + shift per clip,
    its ViSQOL offline's with noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["piece", "method", "rate", "logmel_db", "visqol"])
        w.writeheader()
        for i in range(10):
            for rate in (0.5, 2.0):
                lm, vq = rng.uniform(3, 5), rng.uniform(4, 4.5)
                w.writerow({"piece": f"p{i}", "method": "default", "rate": rate, "logmel_db": lm, "visqol": vq})
                w.writerow(
                    {
                        "piece": f"p{i}",
                        "method": "realtime",
                        "rate": rate,
                        "logmel_db": lm + shift,
                        "visqol": vq + rng.normal(0, 0.01),
                    }
                )


def test_the_table_pairs_each_clip_and_names_the_sets_that_are_worse(tmp_path):
    write_set(tmp_path / "set-worse", 0.1, 0)
    write_set(tmp_path / "set-level", 0.0, 1)
    text = rt_eval.table(rt_eval.read(tmp_path))
    logmel = text.split("## ViSQOL")[0]
    # paired per clip: a constant 0.1 dB further is a gain of -0.100 with a zero-width interval
    assert "| set-worse | " in logmel and "(-0.100) [-0.100, -0.100]" in logmel
    assert "(+0.000) [+0.000, +0.000]" in logmel
    assert "| **all 2 sets** | " in logmel and "(-0.050)" in logmel
    assert "Sets where the stream is worse beyond the interval: 1 of 2." in logmel
    assert "| all sets, rate 0.5 |" in logmel and "| all sets, rate 2 |" in logmel
