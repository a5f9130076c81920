"""Reading eval/benchmark.py's results.csv and pairing its rows clip by clip: what the reports and
the paired studies share; and writing the scripts' tables as CSV."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from eval.measures import MEASURES
from eval.stats import improvement


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys, the first row's in order) as a CSV table at ``path``."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def read_rows(path: Path, drop_nan: bool = False, **extra) -> list[dict]:
    """The rows of one results.csv: rate and every measure as numbers (a measure left empty is
    left out; ``drop_nan``: one written as nan too), each row with ``extra`` added (e.g. its set)."""
    skip = ("", "nan") if drop_nan else ("",)
    with open(path) as f:
        return [
            {**r, **extra, "rate": float(r["rate"]), **{m: float(r[m]) for m in MEASURES if r.get(m, "") not in skip}}
            for r in csv.DictReader(f)
        ]


def read_sets(folders, drop_nan: bool = False) -> dict[str, list[dict]]:
    """{folder name: its rows}: one benchmark folder per evaluation set, each row with its ``set``."""
    return {Path(f).name: read_rows(Path(f) / "results.csv", drop_nan, set=Path(f).name) for f in folders}


def read_tree(folder: Path, drop_nan: bool = False) -> list[dict]:
    """The rows of every ``folder/<set>/results.csv``, in the order of the set names, each with its ``set``."""
    tables = sorted(Path(folder).glob("*/results.csv"))
    return [r for rows in read_sets([t.parent for t in tables], drop_nan).values() for r in rows]


def variant_seed(method: str) -> tuple[str, int | None]:
    """'gan-s2' -> ('gan', 2); a method without a seed (a classical stretcher) -> (method, None)."""
    found = re.fullmatch(r"(.+)-s(\d+)", method)
    return (found.group(1), int(found.group(2))) if found else (method, None)


def paired(rows: list[dict], a: str, b: str, seeds: list, measure: str, rate: float | None) -> np.ndarray:
    """Per clip (set, piece, rate): improvement of variant a over b, each averaged over the seeds
    both were trained with. The classifier's accuracy is one number per method and rate, so its
    units are (set, rate), not clips."""

    def per_clip(variant, use):
        acc: dict = {}
        for r in rows:
            name, seed = variant_seed(r["method"])
            if name == variant and seed in use and (rate is None or r["rate"] == rate) and measure in r:
                key = (r["set"], r["rate"]) if measure == "two_sample_accuracy" else (r["set"], r["piece"], r["rate"])
                acc.setdefault(key, []).append(r[measure])
        return {k: float(np.mean(v)) for k, v in acc.items()}

    trained = lambda v: {variant_seed(r["method"])[1] for r in rows if variant_seed(r["method"])[0] == v}
    common = set(seeds) & trained(a) & trained(b)
    va, vb = per_clip(a, common), per_clip(b, common)
    keys = sorted(set(va) & set(vb))
    return improvement(measure, np.array([va[k] for k in keys]), np.array([vb[k] for k in keys]))
