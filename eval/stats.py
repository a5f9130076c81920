"""The statistics of the paired comparisons: which way a measure improves, and the paired
bootstrap interval over clips (eval/study.py, eval/seeds.py, eval/realtime.py, eval/decays.py,
eval/recorded_study.py and the grids of eval/run.py)."""

from __future__ import annotations

import numpy as np

from eval.measures import MEASURES

MIN_UNITS = 5  # fewer paired units than this give no interval (a resample of 1-4 values says nothing)


def bootstrap_ci(
    diffs: np.ndarray, n: int = 10000, seed: int = 0, rng: np.random.Generator | None = None
) -> tuple[float, float, float]:
    """Mean of ``diffs`` and its 95% percentile-bootstrap interval (resampling the clips); the
    interval is NaN with fewer than MIN_UNITS values (the classifier's accuracy is one value per
    set and rate). ``rng``: draw from this generator instead of a fresh one seeded with ``seed``
    (one generator shared by several intervals, as eval/decays.py's table does)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(diffs) < MIN_UNITS:
        return float(diffs.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed) if rng is None else rng
    means = diffs[rng.integers(0, len(diffs), (n, len(diffs)))].mean(axis=1)
    return float(diffs.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def improvement(measure: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per clip, how much better a is than b on ``measure`` (positive = a better), in its units."""
    m = MEASURES[measure]
    if m.better == "lower":
        return b - a
    if m.better == "higher":
        return a - b
    return np.abs(b - m.target) - np.abs(a - m.target)


def cell(mean: float, lo: float, hi: float, units: int | None = None) -> str:
    """One paired difference in a page: ``+0.123 [+0.045, +0.201]``, in bold where the interval
    excludes 0; ``n/a`` without values, and without an interval (too few units) the mean alone."""
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(lo):
        return f"{mean:+.3f} (no interval" + ("" if units is None else f": {units} values") + ")"
    mark = "**" if lo > 0 or hi < 0 else ""
    return f"{mark}{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark}"
