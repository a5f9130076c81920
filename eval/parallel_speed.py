"""Wall time of the three parallel commands at --jobs 1 and --jobs N, one run each.

    python eval/parallel_speed.py --work /tmp/parallel-speed [--out docs/results/parallel.md] [--jobs 2]

  rendering  gan-stretch data midi: 40 music21 pieces, 8 s excerpts, the five default rates
  benchmark  eval/benchmark.py on 8 held-out pieces of that corpus, five rates, every measure
             (ViSQOL and the two-sample test included): the packaged GAN and mapper, the phase
             vocoder and WSOLA
  folder     gan-stretch stretch of a folder of 20 files (2 minutes each, 15 renders of that corpus
             end to end), rate 0.8, the packaged GAN

Each command runs as users run it (a fresh process) into its own folder; the outputs of the two
runs are compared (the manifest and every render; results.csv but its realtime_factor column;
every stretched file). The load average is read before and after each run, and before each task
the machine's own ceiling is measured: the same pure-Python loop in 1 and in N processes. On a
machine that other work keeps busy that ceiling, and with it every speed-up, falls toward 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "gan_stretch.cli"]


def timed(cmd: list[str]) -> tuple[float, tuple, tuple]:
    """Runs ``cmd``; its wall time and the 1-minute load average before and after it."""
    before = os.getloadavg()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, before, os.getloadavg()


def _spin(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s


def ceiling(jobs: int, chunks: int = 8, size: int = 10_000_000) -> float:
    """Wall time of ``chunks`` equal CPU-bound chunks in 1 process over that in ``jobs`` processes."""
    import multiprocessing

    times = []
    for n in (1, jobs):
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            pool.map(_spin, [1000] * n)  # the processes are up before the clock starts
            t0 = time.perf_counter()
            pool.map(_spin, [size] * chunks, chunksize=1)
            times.append(time.perf_counter() - t0)
    return times[0] / times[1]


def same_files(a: Path, b: Path, skip: str | None = None) -> bool:
    names = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and "/cache/" not in str(p))
    if names(a) != names(b):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names(a) if n != skip)


def same_results(a: Path, b: Path) -> bool:
    rows = lambda d: [
        {k: v for k, v in r.items() if k != "realtime_factor"} for r in csv.DictReader(open(d / "results.csv"))
    ]
    return rows(a) == rows(b)


def folder_of_renders(corpus: Path, out: Path, files: int, per_file: int = 15) -> None:
    from gan_stretch.data.manifest import Corpus

    c = Corpus(corpus)
    items = c.items
    out.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        wave = np.concatenate([c.load(items[(k + j) % len(items)], 1.0) for j in range(per_file)])
        sf.write(str(out / f"{k:02d}.wav"), wave, c.sample_rate, subtype="PCM_16")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="scratch folder (emptied first)")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    p.add_argument("--jobs", type=int, default=2, help="the parallel run's --jobs")
    p.add_argument("--pieces", type=int, default=40)
    p.add_argument("--bench-pieces", type=int, default=8)
    p.add_argument("--files", type=int, default=20)
    p.add_argument("--only", nargs="*", default=["rendering", "benchmark", "folder"])
    return p


def measure(name: str, make, compare, n: int) -> tuple:
    """Runs ``make(1)`` and ``make(n)`` after reading the machine's ceiling; the row of the table."""
    limit = ceiling(n)
    print(f"{name}: machine ceiling now {limit:.2f}x", flush=True)
    runs = {}
    for jobs in (1, n):
        seconds, before, after = timed(make(jobs))
        runs[jobs] = (seconds, before[0], after[0])
        print(f"{name} --jobs {jobs}: {seconds:.1f} s (load {before[0]:.2f} before, {after[0]:.2f} after)", flush=True)
    return name, runs, compare(), limit


def render_command(out: Path, pieces: int, jobs: int) -> list[str]:
    """gan-stretch data midi: ``pieces`` 8 s excerpts into ``out``."""
    return [*CLI, "data", "midi", "--out", str(out), "--pieces", str(pieces), "--seconds", "8", "--jobs", str(jobs)]


def bench_command(data: Path, out: Path, pieces: int, jobs: int) -> list[str]:
    """eval/benchmark.py on ``pieces`` pieces of ``data``: the packaged GAN and mapper, PV and WSOLA."""
    return [
        sys.executable,
        "eval/benchmark.py",
        "--data",
        str(data),
        "--out",
        str(out),
        "--pieces",
        str(pieces),
        "--model",
        "gan=gan_stretch/checkpoints/default.safetensors",
        "--model",
        "mapper=gan_stretch/checkpoints/mapper.safetensors",
        "--methods",
        "pv",
        "wsola",
        "--jobs",
        str(jobs),
    ]


def stretch_command(folder: Path, out: Path, jobs: int) -> list[str]:
    """gan-stretch stretch of a folder at rate 0.8."""
    return [*CLI, "stretch", str(folder), str(out), "--rate", "0.8", "--jobs", str(jobs)]


def table(results: list[tuple], n: int) -> str:
    """The markdown table of ``measure``'s rows, with the machine's core count under it."""
    lines = [
        f"| task | --jobs 1 (s) | --jobs {n} (s) | speed-up | same output | load average (1 min) before each run "
        f"| machine ceiling ({n} processes of a CPU loop vs 1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs, same, limit in results:
        (t1, b1, _), (tn, bn, _) = runs[1], runs[n]
        lines.append(
            f"| {name} | {t1:.1f} | {tn:.1f} | {t1 / tn:.2f}x | {'yes' if same else 'NO'} | {b1:.2f} / {bn:.2f} "
            f"| {limit:.2f}x |"
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return "\n".join(lines) + f"\n\n{cores} cores; one run each; `python eval/parallel_speed.py --jobs {n}`\n"


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    work = Path(args.work).resolve()  # the commands below run from the project root
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n = args.jobs
    results = []

    corpus = lambda jobs: work / f"corpus-j{jobs}"
    render = lambda jobs: render_command(corpus(jobs), args.pieces, jobs)
    if "rendering" in args.only:
        name = f"rendering {args.pieces} pieces (gan-stretch data midi)"
        results.append(measure(name, render, lambda: same_files(corpus(1), corpus(n)), n))
    else:
        subprocess.run(render(n), check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    data = corpus(1) if corpus(1).is_dir() else corpus(n)

    if "benchmark" in args.only:
        bench = lambda jobs: bench_command(data, work / f"bench-j{jobs}", args.bench_pieces, jobs)
        name = f"benchmark, {args.bench_pieces} pieces x 5 rates, every measure (eval/benchmark.py)"
        results.append(measure(name, bench, lambda: same_results(work / "bench-j1", work / f"bench-j{n}"), n))

    if "folder" in args.only:
        folder_of_renders(data, work / "album", args.files)
        stretch = lambda jobs: stretch_command(work / "album", work / f"album-j{jobs}", jobs)
        name = f"folder of {args.files} files, 2 minutes each (gan-stretch stretch DIR)"
        results.append(measure(name, stretch, lambda: same_files(work / "album-j1", work / f"album-j{n}"), n))

    text = table(results, n)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(same for _, _, same, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
