"""Speed benchmark: seconds of audio stretched per second of processing, measured in one run.

    python eval/speed.py [--audio FILE] [--seconds 180] [--rate 1.5]        # CPU: ours vs librosa vs Rubber Band
    python eval/speed.py --gpu-batch 64 [--clip-seconds 10]                 # GPU: ours, batched
    python eval/speed.py --memory 1 10                                      # peak memory: 1- and 10-minute files

Without --audio, a stereo 44.1 kHz test piece is rendered from the music21 corpus with fluidsynth
(two GM programs, one per channel). Prints a table with realtime factors and ratios against
librosa's phase vocoder.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def test_piece(seconds: float, sr: int) -> np.ndarray:
    from gan_stretch.data.render import find_soundfont, music21_midi, perform, render

    midi, sf2 = music21_midi("bach/bwv66.6"), find_soundfont()
    n = int(seconds * sr)
    chans = []
    for program in (0, 48):  # piano left, strings right; the chorale repeated to fill the duration
        one = render(perform(midi, program, 60.0, 1.0), sf2, sr, int(60 * sr))
        chans.append(np.resize(one, n))
    return np.stack(chans).astype(np.float32)


def timed(fn, *args, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def cpu(args) -> None:
    import soundfile as sf

    from gan_stretch import Stretcher, teachers

    if args.audio:
        wave, sr = sf.read(args.audio, dtype="float32", always_2d=True)
        wave = wave.T[:, : int(args.seconds * sr)]
    else:
        sr = 44100
        wave = test_piece(args.seconds, sr)
    dur = wave.shape[-1] / sr
    teachers.phase_vocoder(wave[:, :sr], sr, args.rate)  # compile librosa's numba kernels outside the timing
    rows = []
    name = args.checkpoint or "default"
    configs = [
        (
            f"{name}, {args.griffin_lim} GL iteration(s)",
            args.checkpoint,
            {"griffin_lim": args.griffin_lim, "phase_lock": bool(args.phase_lock)},
        )
    ]
    if args.checkpoint is None:
        configs.append(("mapper, 1 GL iteration", "mapper", {"griffin_lim": 1}))
    for label, checkpoint, options in configs:
        stretcher = Stretcher(checkpoint, device="cpu", **options)
        stretcher.stretch(wave[:, : 5 * sr], sr, args.rate)  # allocator warm-up
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            rows.append(
                (
                    f"gan-stretch ({label}; CPU, {threads} thread(s))",
                    timed(stretcher.stretch, wave, sr, args.rate, repeats=args.repeats)[0],
                )
            )
    torch.set_num_threads(args.threads)
    rows.insert(
        0, ("librosa phase vocoder", timed(teachers.phase_vocoder, wave, sr, args.rate, repeats=args.repeats)[0])
    )
    for name, fn in (
        ("Rubber Band R3 (rubberband -3)", teachers.rubberband_r3),
        ("Rubber Band R2 (rubberband -2)", teachers.rubberband_r2),
    ):
        try:
            rows.append((name, timed(fn, wave, sr, args.rate)[0]))
        except Exception as e:  # rubberband-cli missing: report, do not fail the benchmark
            print(f"skipping {name}: {e}")
    pv = rows[0][1]
    print(
        f"\n{dur:.0f} s of {wave.shape[0]}-channel {sr} Hz audio, rate {args.rate}, {torch.get_num_threads()} "
        f"torch threads\n"
    )
    print("| method | seconds | x realtime | speed vs librosa PV |\n|---|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.2f} | {dur / s:.1f} | {pv / s:.2f} |")


def gpu(args) -> None:
    from gan_stretch import Stretcher
    from gan_stretch.timemap import from_rate

    device = args.device or "cuda"
    stretcher = Stretcher(
        args.checkpoint, device=device, griffin_lim=args.griffin_lim, phase_lock=bool(args.phase_lock)
    )
    sr = stretcher.spectral.sample_rate
    n = int(args.clip_seconds * sr)
    t = torch.arange(n, device=device) / sr
    f0 = torch.linspace(110, 880, args.gpu_batch, device=device)[:, None]
    batch = (0.2 * torch.sin(2 * torch.pi * f0 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 2 * t))).float()
    tmap = from_rate(n, args.rate)
    with torch.no_grad():
        stretcher._stretch_tensor(batch, sr, tmap)  # warm-up; on the device, no host copies timed
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            stretcher._stretch_tensor(batch, sr, tmap)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    s = (time.perf_counter() - t0) / args.repeats
    audio = args.gpu_batch * args.clip_seconds
    name = torch.cuda.get_device_name() if device.startswith("cuda") else device
    print(
        f"| device | batch | clip s | GL iterations | seconds | x realtime |\n|---|---|---|---|---|---|\n"
        f"| {name} | {args.gpu_batch} | {args.clip_seconds:g} | {args.griffin_lim} | {s:.3f} | {audio / s:.0f} |"
    )


def memory(args) -> None:
    """Peak memory of `gan-stretch stretch` on files of growing length (one fresh process each)."""
    import subprocess
    import tempfile
    from pathlib import Path

    import soundfile as sf

    sr = 44100
    piece = test_piece(60.0, sr)
    print("| input | seconds | peak RSS (MB) | output file (MB, 16-bit) |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.memory:
            src, dst = Path(tmp) / f"in{minutes}.wav", Path(tmp) / f"out{minutes}.wav"
            n = int(minutes * 60 * sr)
            sf.write(src, np.stack([np.resize(ch, n) for ch in piece]).T, sr, subtype="PCM_16")
            # VmHWM: the peak of this process image alone (ru_maxrss would include the parent's
            # memory at fork time, which holds the test file's samples)
            script = (
                "import re, sys; from gan_stretch.cli import main; rc = main(sys.argv[1:]); "
                "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(rc)"
            )
            t0 = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    script,
                    "stretch",
                    str(src),
                    str(dst),
                    "--rate",
                    str(args.rate),
                    "--griffin-lim",
                    str(args.griffin_lim),
                ]
                + (["--phase-lock"] if args.phase_lock else []),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            peak_mb = int(out[-1]) / 1024
            print(
                f"| {minutes:g} min stereo {sr} Hz | {time.perf_counter() - t0:.0f} | {peak_mb:.0f} "
                f"| {dst.stat().st_size / 1e6:.0f} |"
            )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", default=None)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--rate", type=float, default=1.5)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--griffin-lim", type=int, default=1)
    p.add_argument("--phase-lock", type=int, default=0, help="1: lock phases to peaks")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--gpu-batch", type=int, default=0, help="measure batched throughput instead (clips at once)")
    p.add_argument("--clip-seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--memory",
        type=float,
        nargs="*",
        default=None,
        metavar="MINUTES",
        help="measure peak memory of the CLI on files of these lengths instead, e.g. --memory 1 10",
    )
    args = p.parse_args(argv)
    (memory if args.memory else gpu if args.gpu_batch else cpu)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
