"""Speed benchmark: seconds of audio stretched per second of processing, measured in one run.

    python eval/speed.py [--audio FILE] [--seconds 180] [--rate 1.5]        # CPU: ours vs librosa vs Rubber Band
    python eval/speed.py --busy --no-mapper --no-rubberband                 # CPU, and again with one core busy
    python eval/speed.py --gpu-batch 64 [--clip-seconds 10]                 # GPU: ours, batched
    python eval/speed.py --memory 1 10                                      # peak memory: 1- and 10-minute files
    python eval/speed.py --memory 1 10 --realtime                           # the same, stretched as a stream

Without --audio, a stereo 44.1 kHz test piece is rendered from the music21 corpus with fluidsynth
(two GM programs, one per channel). Prints a table with realtime factors and ratios against
librosa's phase vocoder. CPU rounds are interleaved (librosa on one thread, ours on one thread
and on ``--threads``, adaptive to the idle cores; the mapper), five by default: medians, and each
round's ratio to librosa's time in that round. ``--busy`` measures every row again while another
process (a Python busy loop, ended by its PID) holds one core.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def seconds_of(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def load_note() -> str:
    """The one-minute load average and the CPUs of this machine, for the table's caption."""
    import os

    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


class BusyCore:
    """A second process holding one core (a Python busy loop) while the block runs; ended by its PID."""

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # let it take its core
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def cpu_audio(args) -> tuple[np.ndarray, int]:
    """The audio timed: the first --seconds of --audio, else the test piece at 44.1 kHz; (channels, samples)."""
    import soundfile as sf

    if args.audio:
        wave, sr = sf.read(args.audio, dtype="float32", always_2d=True)
        return wave.T[:, : int(args.seconds * sr)], sr
    sr = 44100
    return test_piece(args.seconds, sr), sr


def cpu_stretchers(args, wave: np.ndarray, sr: int) -> tuple[list[tuple], dict]:
    """The configurations timed (the model, and the mapper beside the default) and their
    Stretchers, each warmed up on 5 s of ``wave``."""
    from gan_stretch import Stretcher

    name = args.checkpoint or "default"
    configs = [(name, args.checkpoint, {"griffin_lim": args.griffin_lim, "phase_lock": bool(args.phase_lock)})]
    if args.checkpoint is None and not args.no_mapper:
        configs.append(("mapper", "mapper", {"griffin_lim": 1}))
    stretchers = {}
    for label, checkpoint, options in configs:
        stretchers[label] = Stretcher(checkpoint, device="cpu", **options)
        stretchers[label].stretch(wave[:, : 5 * sr], sr, args.rate)  # allocator warm-up
    return configs, stretchers


def cpu_rounds(args, wave: np.ndarray, sr: int, configs: list[tuple], stretchers: dict) -> tuple[dict, dict]:
    """--repeats rounds (and as many with a busy core, with --busy), each method in turn: the
    seconds of each and each one's ratio to librosa's of the same round."""
    from gan_stretch.runtime.parallel import limited_threads
    from gan_stretch.stretching import teachers

    def one(fn, threads: int) -> float:
        with limited_threads(threads):  # torch, BLAS and numba alike; restored after
            return seconds_of(fn, wave, sr, args.rate)

    phases = [("", False)] + ([("busy: ", True)] if args.busy else [])
    rows, ratios = {}, {}
    print(f"start: {load_note()}")
    for prefix, busy in phases:
        with BusyCore() if busy else contextlib.nullcontext():
            for _ in range(args.repeats):
                pv = one(teachers.phase_vocoder, 1)
                rows.setdefault(f"{prefix}librosa phase vocoder (1 thread)", []).append(pv)
                for label, _, _ in configs:
                    for threads in sorted({1, args.threads}):
                        what = f"{prefix}gan-stretch {label} ({threads} thread{'s' if threads > 1 else ''}"
                        what += ", adaptive)" if threads > 1 else ")"
                        s = one(stretchers[label].stretch, threads)
                        rows.setdefault(what, []).append(s)
                        ratios.setdefault(what, []).append(pv / s)
    print(f"end: {load_note()}")
    return rows, ratios


def rubberband_rows(args, wave: np.ndarray, sr: int) -> dict[str, list[float]]:
    """One timed run of Rubber Band R3 and R2 (none with --no-rubberband; skipped when missing)."""
    from gan_stretch.stretching import teachers

    rows = {}
    for rb, fn in (
        ("Rubber Band R3 (rubberband -3)", teachers.rubberband_r3),
        ("Rubber Band R2 (rubberband -2)", teachers.rubberband_r2),
    ):
        if args.no_rubberband:
            break
        try:
            rows[rb] = [seconds_of(fn, wave, sr, args.rate)]
        except Exception as e:  # rubberband-cli missing: report, do not fail the benchmark
            print(f"skipping {rb}: {e}")
    return rows


def cpu(args) -> None:
    """Every method in turn in each of ``--repeats`` rounds (interleaved, so a change in the
    machine's load reaches all of them alike): librosa and ours on one thread each, ours with the
    default threads, the mapper; medians, and the ratio to librosa of the same round."""
    from gan_stretch.stretching import teachers

    wave, sr = cpu_audio(args)
    dur = wave.shape[-1] / sr
    teachers.phase_vocoder(wave[:, :sr], sr, args.rate)  # compile librosa's numba kernels outside the timing
    configs, stretchers = cpu_stretchers(args, wave, sr)
    torch.set_num_threads(args.threads)
    rows, ratios = cpu_rounds(args, wave, sr, configs, stretchers)
    rows |= rubberband_rows(args, wave, sr)
    print(
        f"\n{dur:.0f} s of {wave.shape[0]}-channel {sr} Hz audio, rate {args.rate}, {args.repeats} rounds "
        f"(Rubber Band: one run), median seconds and the median of each round's ratio to librosa\n"
    )
    print("| method | seconds (median) | min - max | x realtime | speed vs librosa PV (same round) |")
    print("|---|---|---|---|---|")
    for what, times in rows.items():
        med = statistics.median(times)
        ratio = f"{statistics.median(ratios[what]):.2f}" if what in ratios else "-"
        print(f"| {what} | {med:.2f} | {min(times):.2f} - {max(times):.2f} | {dur / med:.1f} | {ratio} |")


def gpu(args) -> None:
    from gan_stretch import Stretcher
    from gan_stretch.dsp.timemap import from_rate

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
                "import re, sys; from gan_stretch.cli.main import main; rc = main(sys.argv[1:]); "
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
                + (["--phase-lock"] if args.phase_lock else [])
                + (["--realtime"] if args.realtime else []),
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
    p.add_argument("--repeats", type=int, default=5, help="rounds (CPU: the median is reported)")
    p.add_argument("--realtime", action="store_true", help="--memory: the CLI's real-time mode (--realtime)")
    p.add_argument("--busy", action="store_true", help="CPU: measure again while another process holds one core")
    p.add_argument("--no-mapper", action="store_true", help="CPU: leave out the mapper's rows")
    p.add_argument("--no-rubberband", action="store_true", help="CPU: leave out Rubber Band")
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
