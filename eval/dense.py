"""Dense rhythms: does every hit of a fast pattern keep its level through a stretch?

    python eval/dense.py --out docs/results/dense

Patterns (generated here, seeded): 16th-note hi-hats at 120 and 180 bpm, a snare roll in 32nd notes
at 120 bpm and a click every 0.25 s; each at 22.05 and 44.1 kHz, stretched at rates 0.5 to 3 by the
packaged default model with ``dense_attacks`` on (the default) and off, and with ``attack_span``
1:1. A hit's level is the peak within 3 ms of where the rate puts it (plus half a hop either side,
where attacks may land) against its own peak in the input. Writes results.csv (one row per
pattern, sample rate, rate and variant) and table.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.results import write_rows
from gan_stretch import Stretcher

RATES = (0.5, 0.75, 1.25, 1.5, 2.0, 3.0)
SAMPLE_RATES = (22050, 44100)


def hit(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit: a hi-hat (differentiated noise, 12 ms decay) or a snare (noise and a 190 Hz
    tone, 40 ms decay)."""
    if kind == "hat":
        t = np.arange(int(0.05 * sr)) / sr
        x = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.012)
    else:
        t = np.arange(int(0.12 * sr)) / sr
        x = (rng.standard_normal(len(t)) + 2 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t / 0.04)
    return x / np.abs(x).max()


def pattern(name: str, sr: int, seconds: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(audio [N] float32, onset samples) of a named pattern: hats16-120, hats16-180, roll32-120,
    click-4hz. Velocities vary by +-20 % (seeded)."""
    rng = np.random.default_rng(seed)
    kind, step = {
        "hats16-120": ("hat", 60 / 120 / 4),
        "hats16-180": ("hat", 60 / 180 / 4),
        "roll32-120": ("snare", 60 / 120 / 8),
        "click-4hz": ("click", 0.25),
    }[name]
    n = int(seconds * sr)
    x = np.zeros(n)
    onsets = []
    k = 0
    while (start := int(round((0.25 + k * step) * sr))) < n - int(0.3 * sr):
        gain = 0.5 * (0.8 + 0.4 * rng.random())
        if kind == "click":
            x[start] += gain
        else:
            h = hit(kind, sr, rng)
            x[start : start + len(h)] += gain * h
        onsets.append(start)
        k += 1
    return x.astype(np.float32), np.asarray(onsets)


def hit_levels(y: np.ndarray, x: np.ndarray, onsets: np.ndarray, rate: float, sr: int, hop: int) -> np.ndarray:
    """Each hit's peak in the output against its peak in the input, dB."""
    spacing = np.diff(onsets).min() / rate
    reach = int(min(hop / 2 + 0.003 * sr, spacing / 2))
    out = []
    for o in onsets:
        peak_in = np.abs(x[o : o + int(0.003 * sr) + 1]).max()
        c = int(round(o / rate))
        peak_out = np.abs(y[max(0, c - reach) : c + reach]).max()
        out.append(20 * np.log10(max(peak_out, 1e-9) / peak_in))
    return np.asarray(out)


VARIANTS = {
    "dense (default)": {},
    "span 2:2, not dense": {"dense_attacks": False},
    "span 1:1, not dense": {"dense_attacks": False, "attack_span": (1, 1)},
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--patterns", nargs="+", default=["hats16-120", "hats16-180", "roll32-120", "click-4hz"])
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stretchers = {name: Stretcher(device="cpu", **kw) for name, kw in VARIANTS.items()}
    rows = []
    for name in args.patterns:
        for sr in SAMPLE_RATES:
            x, onsets = pattern(name, sr)
            hop = 512 * sr // 22050
            for rate in RATES:
                for variant, s in stretchers.items():
                    d = hit_levels(s.stretch(x, sr, rate), x, onsets, rate, sr, hop)
                    rows.append(
                        {
                            "pattern": name,
                            "sample_rate": sr,
                            "rate": rate,
                            "variant": variant,
                            "hits": len(d),
                            "down_3db": int((d < -3).sum()),
                            "down_6db": int((d < -6).sum()),
                            "worst_db": round(float(d.min()), 2),
                            "median_db": round(float(np.median(d)), 2),
                        }
                    )
                    print(*rows[-1].values(), flush=True)
    write_rows(out / "results.csv", rows)
    lines = ["| pattern | sr | rate | " + " | ".join(VARIANTS) + " |", "|---|---|---|" + "---|" * len(VARIANTS)]
    for name in args.patterns:
        for sr in SAMPLE_RATES:
            for rate in RATES:
                cells = []
                for variant in VARIANTS:
                    r = next(
                        r
                        for r in rows
                        if (r["pattern"], r["sample_rate"], r["rate"], r["variant"]) == (name, sr, rate, variant)
                    )
                    cells.append(f"{r['down_3db']}/{r['hits']} ({r['worst_db']:+.1f})")
                lines.append(f"| {name} | {sr} | {rate:g} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text(
        "Hits more than 3 dB below their input peak / hits (the worst hit, dB)\n\n" + "\n".join(lines) + "\n"
    )
    print(f"wrote {out / 'results.csv'} and {out / 'table.md'}")


if __name__ == "__main__":
    main()
