"""Attacks on time-map anchors: the peak of a hit placed exactly on (or near) an anchor, after the
stretch, against Rubber Band R2 and R3 given the same map.

    python eval/anchors.py --out docs/results/anchors

A click (0.9) or a hi-hat hit (eval/dense.py's) on a quiet noise bed, 3.5 s at 22.05 kHz; one anchor
(s, round(s / r)) at s = 0.5 to 2.75 s, the overall rate r (0.8, 1.25, 2), the hit on the anchor or
100 ms after it. Writes results.csv and table.md (the smallest and median peak over positions,
and the output time of the peak against the anchor's target).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import soundfile as sf

from eval.dense import hit
from eval.results import write_rows
from gan_stretch import Stretcher

SR = 22050
POSITIONS = (0.5, 0.777, 1.0, 1.2345, 1.5, 2.0, 2.75)
RATES = (0.8, 1.25, 2.0)


def signal(kind: str, at: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.01 * rng.standard_normal(int(3.5 * SR))
    if kind == "click":
        x[at] = 0.9
    else:
        h = 0.75 * hit("hat", SR, rng)
        x[at : at + len(h)] += h
    return x.astype(np.float32)


def rubberband(engine: str, x: np.ndarray, anchor: tuple[int, int], n_out: int, tmp: Path) -> np.ndarray:
    sf.write(tmp / "in.wav", x, SR, subtype="FLOAT")
    (tmp / "map.txt").write_text(f"{anchor[0]} {anchor[1]}\n")
    subprocess.run(
        ["rubberband", engine, "-q", "--timemap", str(tmp / "map.txt"), "-D", repr(n_out / SR)]
        + [str(tmp / "in.wav"), str(tmp / "out.wav")],
        check=True,
        capture_output=True,
    )
    return sf.read(tmp / "out.wav", dtype="float32")[0]


def case_rows(ours: Stretcher, kind: str, offset: float, rate: float, pos: float, tmp: Path) -> list[dict]:
    """One hit ``offset`` s after an anchor at ``pos`` s, stretched at ``rate`` by each method: its
    peak in and out, and how late the output's peak is against where the map puts the hit."""
    s = int(pos * SR)
    at = s + int(offset * SR)
    x = signal(kind, at)
    n_out = round(len(x) / rate)
    anchor = (s, round(s / rate))
    where = anchor[1] + round((at - s) / rate)
    peak_in = float(np.abs(x[at : at + 64]).max())
    outs = {"gan-stretch": ours.stretch(x, SR, rate, time_map=[anchor])}
    for engine in ("-2", "-3"):
        outs[f"rubberband {engine[1:]}"] = rubberband(engine, x, anchor, n_out, tmp)
    rows = []
    for method, y in outs.items():
        lo = max(0, where - 1024)
        seg = np.abs(y[lo : where + 1024])
        rows.append(
            {
                "kind": kind,
                "offset_s": offset,
                "rate": rate,
                "anchor_s": pos,
                "method": method,
                "peak_in": round(peak_in, 4),
                "peak_out": round(float(seg.max()), 4),
                "late_samples": lo + int(seg.argmax()) - where,
            }
        )
        print(*rows[-1].values(), flush=True)
    return rows


def table_lines(rows: list[dict]) -> list[str]:
    """table.md: per hit, offset and rate, each method's smallest and median peak ratio and its
    largest lateness."""
    lines = [
        "Peak after the stretch / peak in the input: smallest and median over the 7 anchor positions;",
        "largest |output time of the peak - where the map puts the hit| in samples\n",
        "| hit | rate | gan-stretch | rubberband 2 | rubberband 3 |",
        "|---|---|---|---|---|",
    ]
    for kind in ("click", "hat"):
        for offset in (0.0, 0.1):
            for rate in RATES:
                cells = []
                for method in ("gan-stretch", "rubberband 2", "rubberband 3"):
                    sel = [
                        r
                        for r in rows
                        if (r["kind"], r["offset_s"], r["rate"], r["method"]) == (kind, offset, rate, method)
                    ]
                    ratio = np.array([r["peak_out"] / r["peak_in"] for r in sel])
                    late = max(abs(r["late_samples"]) for r in sel)
                    cells.append(f"{ratio.min():.2f} / {np.median(ratio):.2f}, {late}")
                name = f"{kind} {'on the anchor' if offset == 0 else '100 ms after it'}"
                lines.append(f"| {name} | {rate:g} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ours = Stretcher(device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("click", "hat"):
            for offset in (0.0, 0.1):
                for rate in RATES:
                    for pos in POSITIONS:
                        rows += case_rows(ours, kind, offset, rate, pos, Path(tmp))
    write_rows(out / "results.csv", rows)
    (out / "table.md").write_text("\n".join(table_lines(rows)) + "\n")
    print(f"wrote {out / 'results.csv'} and {out / 'table.md'}")


if __name__ == "__main__":
    main()
