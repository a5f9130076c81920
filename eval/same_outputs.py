"""Do stretches stay the same after a speed change? Save outputs once, compare later.

    python eval/same_outputs.py --save /tmp/ref        # with the code to compare against (e.g. main)
    python eval/same_outputs.py --compare /tmp/ref     # with the changed code: relative RMS per case

Cases: synthetic test signals (decaying harmonic notes with clicks, noise bursts, a steady
chord with a drum-like pattern), mono and stereo, 22.05 and 44.1 kHz, and one evaluation-set
piece (its tempo-1 render, when data/eval holds it), each at rates 0.5, 0.8, 1.25 and 2, with
the default Stretcher and the packaged model, on the CPU with one thread. ``--compare`` prints
each case's relative RMS difference (||new - ref|| / ||ref||) and whether it is bit-identical,
and exits 1 when any case exceeds ``--tolerance`` (default 1e-4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

RATES = (0.5, 0.8, 1.25, 2.0)
EVAL_PIECE = (
    Path(__file__).resolve().parents[1]
    / "data/eval/groove-freepats-44100/audio/groove-0001-freepats-cho-L-20.0/r1.000.flac"
)


def notes(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Decaying harmonic notes with a click at each onset, and a little noise (seeded)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros(n)
    for start in np.arange(0.1, seconds - 0.3, 0.37):
        f0 = rng.uniform(110, 880)
        i = int(start * sr)
        tt = t[: n - i]
        env = np.exp(-tt * rng.uniform(2, 8))
        note = sum(np.sin(2 * np.pi * f0 * k * tt + rng.uniform(0, 6)) / k for k in range(1, 6))
        out[i:] += 0.15 * env * note
        out[i : i + 64] += rng.uniform(-0.3, 0.3, 64)
    return out + 0.002 * rng.standard_normal(n)


def bursts(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Noise bursts (hi-hat and snare-like) over a steady chord."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = 0.1 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277.2 * t) + np.sin(2 * np.pi * 329.6 * t))
    for start in np.arange(0.05, seconds - 0.2, 0.125):
        i = int(start * sr)
        k = min(int(0.08 * sr), n - i)
        out[i : i + k] += 0.3 * rng.standard_normal(k) * np.exp(-np.arange(k) / (0.015 * sr))
    return out


def cases():
    """(name, audio [N] or [C, N] float32, sr)."""
    for sr in (22050, 44100):
        yield f"notes-mono-{sr}", notes(sr, 4.0, 1).astype(np.float32), sr
        stereo = np.stack([notes(sr, 4.0, 2), bursts(sr, 4.0, 3)]).astype(np.float32)
        yield f"notes-bursts-stereo-{sr}", stereo, sr
    if EVAL_PIECE.is_file():
        import soundfile as sf

        wave, sr = sf.read(EVAL_PIECE, dtype="float32", always_2d=True)
        yield "eval-groove-freepats-44100-0001", wave.T[0], sr
    else:
        print(f"note: {EVAL_PIECE} not found; the evaluation-set case is left out")


def run(folder: Path, save: bool, tolerance: float) -> int:
    from gan_stretch import Stretcher

    torch.set_num_threads(1)
    stretcher = Stretcher(device="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    worst, failed, identical, total = 0.0, 0, 0, 0
    for name, audio, sr in cases():
        for rate in RATES:
            out = stretcher.stretch(audio, sr, rate)
            path = folder / f"{name}-r{rate:g}.npy"
            if save:
                np.save(path, out)
                print(f"saved {path.name} {out.shape}")
                continue
            if not path.is_file():
                print(f"{path.name}: no reference (run --save with the reference code first)")
                failed += 1
                continue
            ref = np.load(path)
            total += 1
            if ref.shape != out.shape:
                print(f"{path.name}: shape {out.shape} differs from the reference's {ref.shape}")
                failed += 1
                continue
            same = bool(np.array_equal(ref, out))
            rel = float(
                np.sqrt(np.mean((out.astype(np.float64) - ref) ** 2) / max(np.mean(ref.astype(np.float64) ** 2), 1e-30))
            )
            worst = max(worst, rel)
            identical += same
            bad = rel > tolerance
            failed += bad
            print(f"{path.name}: relative RMS {rel:.2e}{' (bit-identical)' if same else ''}{'  FAIL' if bad else ''}")
    if not save:
        print(
            f"\n{total} cases: {identical} bit-identical, worst relative RMS {worst:.2e}, {failed} over {tolerance:g}"
        )
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, metavar="DIR", help="write the reference outputs here")
    group.add_argument("--compare", type=Path, metavar="DIR", help="compare against the outputs saved here")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest relative RMS difference allowed")
    args = p.parse_args(argv)
    return run(args.save or args.compare, args.save is not None, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
