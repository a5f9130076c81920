"""``gan-stretch stretch``: one file, or every audio file of a folder (``--jobs`` worker processes)."""

from __future__ import annotations

import sys


def stretch_command(args) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from . import parallel
    from .audio import AudioReader, check_format, check_output_path
    from .errors import AudioError
    from .pipeline import Stretcher, check_sample_rate
    from .spectral import check_rate
    from .timemap import read

    if args.rate is None and args.duration is None and args.time_map is None:
        raise AudioError("give --rate, --duration or --time-map")
    if args.rate is not None:
        check_rate(args.rate)
    if args.jobs is not None:
        parallel.check_jobs(args.jobs)
    time_map = read(args.time_map) if args.time_map else None
    src, dst = Path(args.input), Path(args.output)
    if src.is_dir():  # a whole folder: every audio file in it, same names, same formats
        jobs, skipped = folder_jobs(src, dst)
        for f, out in jobs:
            check_output_path(out, inputs=(f,), create_folder=True)
    elif not src.exists():
        raise AudioError(f"input file not found: {src}")
    else:
        jobs, skipped = [(src, dst)], []
        check_output_path(dst, inputs=(src,))
        if args.no_clobber and dst.exists():
            raise AudioError(f"{dst} exists (not overwritten: --no-clobber)")
        with AudioReader(src) as reader:  # the input's header and the output's format, before any work
            check_sample_rate(reader.sample_rate, reader.name)
            check_format(dst, reader.sample_rate, reader.channels)
    # every setting, for this process's Stretcher and each folder worker's
    settings = dict(
        device=args.device,
        griffin_lim=args.griffin_lim,
        phase_lock=args.phase_lock,
        residual=not args.no_residual,
        transients=False if args.no_transients else None,
        decays=False if args.no_decays else None,
        refine_attacks={"auto": None, "refine": True, "hold": False}[args.attack_frames],
        attack_span=attack_span(args.attack_span),
        dense_attacks=not args.no_dense_attacks,
    )
    stretcher = Stretcher(args.checkpoint, **settings)
    rate = None if args.rate is None else float(args.rate)
    if not src.is_dir():
        with tqdm(desc="audio", unit="s", leave=False, disable=not sys.stderr.isatty()) as seconds:

            def progress(done, total):
                seconds.total, seconds.n = round(total, 1), round(done, 1)
                seconds.refresh()

            info = stretcher.stretch_file(
                src,
                dst,
                rate,
                duration=args.duration,
                time_map=time_map,
                progress=progress,
                clobber=not args.no_clobber,
            )
        _warn_clipped(dst, info)
        print(
            f"wrote {dst} ({info['frames'] / info['sample_rate']:.2f} s, {info['sample_rate']} Hz, "
            f"{info['channels']} channel(s))"
        )
        return 0
    # one process per core on the CPU; on a GPU the files take turns on it unless --jobs says otherwise
    workers = args.jobs if args.jobs is not None else (parallel.default_jobs() if stretcher.device.type == "cpu" else 1)
    todo, failed, existing = [], [], []
    for f, out in jobs:
        if args.no_clobber and out.exists():
            existing.append(f.relative_to(src))
        else:
            todo.append((f, out))
    done = 0
    for i, info, error in parallel.imap(
        _stretch_file,
        [(f, out, rate, args.duration, time_map, not args.no_clobber) for f, out in todo],
        workers,
        desc="stretching",
        unit="file",
        init=_load_stretcher,
        initargs=(args.checkpoint, settings),
    ):
        f, name = todo[i][0], todo[i][0].relative_to(src)
        if error is not None:
            failed.append((i, name))
            message = parallel.describe(error)
            message = message if str(f) in message else f"{f}: {message}"  # the line names the file
            tqdm.write(f"gan-stretch: error: {message}", file=sys.stderr)
            continue
        _warn_clipped(name, info)
        done += 1
    _load_stretcher(None, None, unload=True)  # the model of a --jobs 1 run, no longer needed
    failed = [name for _, name in sorted(failed)]  # in file order, whatever order the jobs ended in
    summary = f"{done} stretched into {dst}"
    if existing:
        summary += f", {len(existing)} already there (--no-clobber)"
    if failed:
        summary += f", {len(failed)} failed: {_names(failed)}"
    print(summary)
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not audio gan-stretch reads: {_names(skipped)}")
    return 1 if failed else 0


_STRETCHER = None  # a folder job's Stretcher, made once per process by _load_stretcher


def _load_stretcher(checkpoint, settings: dict | None, unload: bool = False) -> None:
    """This process's Stretcher for a folder's files: ``checkpoint`` with the command's ``settings``
    (the keyword arguments of the Stretcher the command made first)."""
    global _STRETCHER
    from .pipeline import Stretcher

    _STRETCHER = None if unload else Stretcher(checkpoint, **settings)


def _stretch_file(job) -> dict:
    """One file of a folder (in a worker process when --jobs > 1)."""
    f, out, rate, duration, time_map, clobber = job
    return _STRETCHER.stretch_file(f, out, rate, duration=duration, time_map=time_map, clobber=clobber)


def attack_span(text: str | None) -> tuple[int, int] | None:
    """``--attack-span BEFORE:AFTER`` as two frame counts (None: the Stretcher's default)."""
    from .errors import ConfigError

    if text is None:
        return None
    try:
        before, after = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--attack-span must be BEFORE:AFTER frame counts such as 2:2, got {text!r}") from None
    return before, after


def folder_jobs(src, dst) -> tuple[list, list]:
    """(input file, output file) pairs for a folder of audio, and the files left out as not audio.

    Hidden files and folders (macOS ``._x.wav`` resource forks, ``.x.partial-*`` files of an
    interrupted write) are never audio to stretch; an output folder inside the input folder is
    never read as input (a second run would stretch the first run's outputs)."""
    from .audio import FORMATS
    from .errors import AudioError

    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r:
        raise AudioError("output folder is the input folder; choose another")
    jobs, skipped = [], []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.resolve() == dst_r or dst_r in p.resolve().parents:
            continue
        if p.suffix.lower() in FORMATS:
            jobs.append((p, dst / rel))
        else:
            skipped.append(rel)
    if not jobs:
        raise AudioError(f"no audio files in {src}" + (f" (skipped: {_names(skipped)})" if skipped else ""))
    return jobs, skipped


def _names(paths, most: int = 5) -> str:
    names = [str(p) for p in paths]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _warn_clipped(name, info: dict) -> None:
    if info.get("clipped"):
        import math

        print(
            f"gan-stretch: warning: {name}: {info['clipped']} sample(s) clipped at full scale (peak "
            f"{info['peak']:.3f}, {20 * math.log10(info['peak']):+.1f} dBFS); lower the input level by "
            f"{20 * math.log10(info['peak']) + 0.1:.1f} dB or write a float format",
            file=sys.stderr,
        )
