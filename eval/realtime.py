"""What the real-time mode costs against the offline stretch: quality on every evaluation set,
latency, and CPU load per second of audio.

    # 1. both on each set (the offline default and the stream, in the same run)
    for S in $(ls data/eval); do
      python eval/benchmark.py --data data/eval/$S --out BENCH/$S --pieces 8 -j 1 --threads 1 \\
        --no-two-sample --model default=default --model realtime=default@stream=1 --methods
    done
    # 2. the paired table (realtime minus default, per set and per rate, 95 % bootstrap intervals)
    python eval/realtime.py --bench BENCH --out docs/results/realtime
    # 3. latency and CPU load (one thread, 44.1 kHz stereo; median of --runs)
    python eval/realtime.py --speed --out docs/results/realtime

The stream is fed in chunks of 1024 samples (eval/benchmark.py's ``stream=1``); its output does
not depend on the chunk size (tests/stretching/test_realtime.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.measures import BETTER, MEASURES
from eval.results import paired, read_tree
from eval.stats import bootstrap_ci

SHOWN = ("logmel_db", "visqol", "attack_db", "smear_db", "oversmoothing_db")


def read(bench: Path) -> list[dict]:
    """Every set's results.csv under ``bench``, each row with its set's name (measures written as nan left out)."""
    return read_tree(bench, drop_nan=True)


def mean_of(rows, method, measure, keep=lambda r: True) -> float:
    v = [r[measure] for r in rows if r["method"] == method and measure in r and keep(r)]
    return float(np.mean(v)) if v else float("nan")


def cell(rows, measure, keep=lambda r: True) -> str:
    """'offline -> stream (gain) [low, high]' over the clips ``keep`` selects; gain positive where
    the stream is better."""
    sub = [r for r in rows if keep(r)]
    gain, lo, hi = bootstrap_ci(paired(sub, "realtime", "default", [None], measure, None))
    a, b = mean_of(sub, "default", measure), mean_of(sub, "realtime", measure)
    return f"{a:.3f} -> {b:.3f} ({gain:+.3f}) [{lo:+.3f}, {hi:+.3f}]"


def worse(rows, measure, keep) -> bool:
    """The stream worse beyond its interval on ``measure`` over the clips ``keep`` selects."""
    sub = [r for r in rows if keep(r)]
    _, _, hi = bootstrap_ci(paired(sub, "realtime", "default", [None], measure, None))
    return hi < 0


def table(rows: list[dict]) -> str:
    sets = sorted({r["set"] for r in rows})
    rates = sorted({r["rate"] for r in rows})
    out = [
        "Offline default -> real-time stream on the same clips (8 held-out pieces per set, rates "
        + ", ".join(f"{r:g}" for r in rates)
        + "); gain positive where the stream is better; 95 % paired bootstrap intervals over clips.",
        "",
    ]
    for measure in SHOWN:
        out += [
            f"## {MEASURES[measure].short} ({BETTER[measure]} is better)",
            "",
            "| set | offline -> stream (gain) [95 %] |",
            "|---|---|",
        ]
        for s in sets:
            out.append(f"| {s} | {cell(rows, measure, lambda r, s=s: r['set'] == s)} |")
        out.append(f"| **all {len(sets)} sets** | {cell(rows, measure)} |")
        for rate in rates:
            out.append(f"| all sets, rate {rate:g} | {cell(rows, measure, lambda r, q=rate: r['rate'] == q)} |")
        n_worse = sum(worse(rows, measure, lambda r, s=s: r["set"] == s) for s in sets)
        out += ["", f"Sets where the stream is worse beyond the interval: {n_worse} of {len(sets)}.", ""]
    return "\n".join(out)


def speed(out: Path, runs: int, seconds: float) -> str:
    """Latency and CPU time per second of audio (one thread, 44.1 kHz stereo), stream and offline."""
    import torch

    from gan_stretch import Stretcher

    torch.set_num_threads(1)
    sr = 44100
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for on in np.arange(0.05, seconds - 0.3, 0.3):  # notes with clicks, as tests/stretching/test_realtime.py
        i, f = int(on * sr), 220 * 2 ** (rng.integers(0, 12) / 12)
        x[i:] += 0.15 * np.sin(2 * np.pi * f * (t[i:] - on)) * np.exp(-3 * (t[i:] - on))
        x[i : i + 400] += 0.4 * rng.standard_normal(400) * np.exp(-np.arange(400) / 80)
    x = np.stack([x, 0.7 * np.roll(x, 80)]).astype(np.float32)
    st = Stretcher(device="cpu")
    lines = [
        f"One thread, {seconds:g} s of stereo 44.1 kHz (notes and clicks), median of {runs} runs; CPU "
        "load: CPU seconds per second of input audio (below 1: faster than real time).",
        "",
        "| rate | latency (s) | stream: CPU s per audio s | offline: CPU s per audio s | stream / offline |",
        "|---|---|---|---|---|",
    ]
    figures = []
    for rate in (0.5, 0.8, 1.25, 2.0):
        times = {"stream": [], "offline": []}
        for _ in range(runs):
            t0 = time.process_time()
            s = st.stream(sr, 2, rate)
            for i in range(0, n, 1024):
                s.process(x[:, i : i + 1024])
            s.finish()
            times["stream"].append(time.process_time() - t0)
            t0 = time.process_time()
            st.stretch(x, sr, rate)
            times["offline"].append(time.process_time() - t0)
        a, b = np.median(times["stream"]) / seconds, np.median(times["offline"]) / seconds
        lines.append(f"| {rate:g} | {s.latency / sr:.2f} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
        figures.append({"rate": rate, "latency_s": s.latency / sr, "stream_load": a, "offline_load": b})
    (out / "speed.json").write_text(json.dumps(figures, indent=1) + "\n")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", type=Path, help="a folder of per-set benchmark folders (each with results.csv)")
    p.add_argument("--speed", action="store_true", help="measure latency and CPU load")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.bench:
        text = table(read(args.bench))
        (args.out / "table.md").write_text(text + "\n")
        print(text)
    if args.speed:
        text = speed(args.out, args.runs, args.seconds)
        (args.out / "speed.md").write_text(text + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
