"""Where one stretch spends its time: CPU seconds per stage, on one thread.

    python eval/profile_stretch.py --rate 0.5 [--audio FILE] [--seconds 180]

Stretches a stereo 44.1 kHz piece (eval/speed.py's test piece unless --audio) with the default
Stretcher and the packaged model: one warm-up at full size, one timed run (wall, user and system
time, page faults), one under cProfile with the process's CPU time as its clock; prints one JSON
line with the stages' cumulative CPU seconds. Run it with two checkouts (PYTHONPATH) to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

STAGES = {  # stage -> functions of gan_stretch whose cumulative time it is
    "analysis pass (STFT, onsets, bands)": ["analysis_pass"],
    "decays (corrections)": ["corrections"],
    "autoencoder encode": ["encode"],
    "autoencoder decode": ["decode"],
    "generator": ["forward"],
    "phase propagation (+ angle)": ["propagate_phase", "angle"],
    "Griffin-Lim": ["griffin_lim"],
    "overlap-add output": ["add"],
    "DC pass": ["direct_current"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=1.5)
    p.add_argument("--audio", default=None)
    p.add_argument("--seconds", type=float, default=180.0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import gan_stretch
    from gan_stretch import Stretcher

    if args.audio:
        import soundfile as sf

        wave, sr = sf.read(args.audio, dtype="float32", always_2d=True)
        wave = wave.T[:, : int(args.seconds * sr)].copy()
    else:
        from eval.speed import test_piece

        sr = 44100
        wave = test_piece(args.seconds, sr)
    s = Stretcher(device="cpu")
    s.stretch(wave, sr, args.rate)  # warm-up at full size
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    s.stretch(wave, sr, args.rate)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    prof = cProfile.Profile(timer=time.process_time)
    prof.enable()
    s.stretch(wave, sr, args.rate)
    prof.disable()
    cum: dict[str, float] = {}
    for (path, _, name), (_, _, _, total, _) in pstats.Stats(prof).stats.items():
        if "gan_stretch" in path and (name != "forward" or path.endswith("generator.py")):
            cum[name] = cum.get(name, 0.0) + total
    out = {
        "rate": args.rate,
        "code": gan_stretch.__file__,
        "wall": wall,
        "user": r1.ru_utime - r0.ru_utime,
        "sys": r1.ru_stime - r0.ru_stime,
        "minflt": r1.ru_minflt - r0.ru_minflt,
    }
    for stage, names in STAGES.items():
        out[stage] = sum(cum.get(n, 0.0) for n in names)
    model = cum.get("stretch_magnitudes", 0.0) - sum(cum.get(n, 0.0) for n in ("encode", "decode", "forward"))
    out["model: other (dB, steady level, bands)"] = model
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
