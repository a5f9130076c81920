"""The ``gan-stretch`` command."""

from __future__ import annotations

import argparse
import sys

from .errors import GanStretchError


def _stretch(args) -> int:
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
    stretcher = Stretcher(
        args.checkpoint,
        device=args.device,
        griffin_lim=args.griffin_lim,
        phase_lock=args.phase_lock,
        residual=not args.no_residual,
        transients=False if args.no_transients else None,
        decays=False if args.no_decays else None,
    )
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
    options = (args.checkpoint, args.device, args.griffin_lim, args.phase_lock, not args.no_residual)
    done = 0
    for i, info, error in parallel.imap(
        _stretch_file,
        [(f, out, rate, args.duration, time_map, not args.no_clobber) for f, out in todo],
        workers,
        desc="stretching",
        unit="file",
        init=_load_stretcher,
        initargs=options,
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
    _load_stretcher(None, None, None, None, None, unload=True)  # the model of a --jobs 1 run, no longer needed
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


def _load_stretcher(checkpoint, device, griffin_lim, phase_lock, residual, unload: bool = False) -> None:
    global _STRETCHER
    from .pipeline import Stretcher

    _STRETCHER = (
        None
        if unload
        else Stretcher(checkpoint, device=device, griffin_lim=griffin_lim, phase_lock=phase_lock, residual=residual)
    )


def _stretch_file(job) -> dict:
    """One file of a folder (in a worker process when --jobs > 1)."""
    f, out, rate, duration, time_map, clobber = job
    return _STRETCHER.stretch_file(f, out, rate, duration=duration, time_map=time_map, clobber=clobber)


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


def _data_midi(args) -> None:
    from .data.corpus import DEFAULT_PROGRAMS, build_true_tempo

    c = build_true_tempo(
        args.out,
        pieces=args.pieces,
        heldout=args.heldout,
        seconds=args.seconds,
        rates=args.rates,
        programs=args.programs or DEFAULT_PROGRAMS,
        programs_per_piece=args.programs_per_piece,
        sample_rate=args.sample_rate,
        soundfont=args.soundfont,
        splits=("heldout",) if args.heldout_only else ("train", "heldout"),
        family=args.family,
        synth=args.synth,
        reverb=args.reverb,
        chorus=args.chorus,
        level_range=args.level_range,
        seed=args.seed,
        items=args.items,
        jobs=args.jobs,
    )
    print(f"{c.root}: {len(c.split('train'))} training and {len(c.split('heldout'))} held-out items")


def _data_teacher(args) -> None:
    from .data.corpus import build_teacher

    c = build_teacher(
        args.audio,
        args.out,
        teacher=args.teacher,
        rates=args.rates,
        seconds=args.seconds,
        excerpts=args.excerpts,
        heldout=args.heldout,
        sample_rate=args.sample_rate,
        jobs=args.jobs,
    )
    print(f"{c.root}: {len(c.split('train'))} training and {len(c.split('heldout'))} held-out items")


def _train(args) -> None:
    from .train import run

    run(args.recipe, args.overrides)


def parser() -> argparse.ArgumentParser:
    from .data.corpus import DEFAULT_RATES

    p = argparse.ArgumentParser(prog="gan-stretch", description="Neural time stretching of music.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stretch", help="stretch an audio file or a folder of them (rate 2 halves the duration)")
    s.add_argument("input", help="audio file (wav, flac, ogg, ...) or folder")
    s.add_argument("output", help="output file, or folder when the input is a folder")
    s.add_argument("--rate", default=None, help="speed factor in [0.25, 4]")
    s.add_argument("--duration", type=float, default=None, help="target duration in seconds (instead of --rate)")
    s.add_argument(
        "--time-map", default=None, help="Rubber Band time map: lines 'source_frame target_frame' (sample indices)"
    )
    s.add_argument(
        "--checkpoint",
        default=None,
        help="model .safetensors, or a packaged model: default (the GAN) or mapper (its baseline)",
    )
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    s.add_argument(
        "--griffin-lim",
        type=int,
        default=1,
        help="phase refinement iterations (default 1; more cost time and gain under 0.05 dB)",
    )
    s.add_argument("--phase-lock", action="store_true", help="lock each bin's phase to its partial's peak")
    s.add_argument(
        "--no-residual",
        action="store_true",
        help="decode the refined latents alone instead of applying their change to the input's spectrum",
    )
    s.add_argument(
        "--no-transients",
        action="store_true",
        help="stretch attacks like everything else (default: as the model was trained; the packaged "
        "models play each attack at speed 1 with the input's phase)",
    )
    s.add_argument(
        "--no-decays",
        action="store_true",
        help="keep the input's pace of decay between attacks (default: notes decay in real time)",
    )
    s.add_argument(
        "-n",
        "--no-clobber",
        action="store_true",
        help="never overwrite an existing output (default: replace it, as sox and rubberband do); "
        "in folder mode, files already stretched are skipped, so a rerun resumes a batch",
    )
    s.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="folder: files stretched at once, one process each (default: one per core on the CPU, "
        "1 on a GPU); each process uses one thread, so the outputs do not depend on it",
    )
    s.set_defaults(fn=_stretch)

    d = sub.add_parser("data", help="build training and evaluation corpora")
    dsub = d.add_subparsers(dest="source", required=True)
    m = dsub.add_parser("midi", help="true-tempo pairs rendered from MIDI: music21 pieces, ensembles, grooves")
    m.add_argument("--out", required=True)
    m.add_argument(
        "--family",
        choices=("classical", "ensemble", "groove"),
        default="classical",
        help="classical: music21 pieces, one GM program per item; ensemble: multi-part scores, each "
        "part on its own program; groove: generated drums, bass, comping and lead",
    )
    m.add_argument("--pieces", type=int, default=32, help="pieces (grooves: grooves) to take")
    m.add_argument(
        "--programs", type=int, nargs="*", default=None, help="classical: General MIDI programs to cycle through"
    )
    m.add_argument(
        "--programs-per-piece",
        type=int,
        default=1,
        help="items per piece (classical: programs, ensemble: orchestrations)",
    )
    m.add_argument(
        "--soundfont",
        default=None,
        help="sound bank, or several separated by commas of which each item draws one: .sf2/.sf3 path "
        "or name (default TimGM6mb) for fluidsynth, .cfg (default freepats) for timidity",
    )
    m.add_argument("--synth", choices=("fluidsynth", "timidity"), default="fluidsynth")
    m.add_argument("--reverb", choices=("off", "on", "random"), default="off", help="reverb per item")
    m.add_argument("--chorus", choices=("off", "on", "random"), default="off", help="chorus per item")
    m.add_argument(
        "--level-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="each item's peak level drawn in this range of dBFS, e.g. -30 -3 (default: the engine's)",
    )
    m.add_argument("--seed", type=int, default=0, help="draws of grooves, orchestrations and render choices")
    m.add_argument("--items", type=int, default=None, help="stop after this many items")
    m.add_argument("--heldout-only", action="store_true", help="render only the held-out pieces (an evaluation set)")
    t = dsub.add_parser("teacher", help="recorded audio stretched by a classical stretcher")
    t.add_argument("--audio", required=True, help="folder of wav/flac/ogg files")
    t.add_argument("--out", required=True)
    t.add_argument("--teacher", default="pv", help="pv | rubberband | wsola | hptsm")
    t.add_argument("--excerpts", type=int, default=3, help="excerpts per file")
    for q in (m, t):
        q.add_argument(
            "-j",
            "--jobs",
            type=int,
            default=None,
            help="items rendered at once, one process each (default: one per core); the corpus is the "
            "same for any number",
        )
        q.add_argument("--rates", type=float, nargs="+", default=list(DEFAULT_RATES))
        q.add_argument("--seconds", type=float, default=10.0)
        q.add_argument("--heldout", type=float, default=0.25, help="fraction of pieces held out for evaluation")
        q.add_argument("--sample-rate", type=int, default=22050)
    m.set_defaults(fn=_data_midi)
    t.set_defaults(fn=_data_teacher)

    r = sub.add_parser(
        "train",
        help="run a recipe in this process (accelerate launch -m gan_stretch.train does the same on any devices)",
    )
    r.add_argument("recipe")
    r.add_argument("overrides", nargs="*", help="key=value")
    r.set_defaults(fn=_train)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (timeout, kill, docker stop, a closed terminal): unwound like Ctrl-C, so
    every temporary file is removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def main(argv=None) -> int:
    import signal
    import threading

    args = parser().parse_args(argv)
    handled = (signal.SIGTERM, signal.SIGHUP) if threading.current_thread() is threading.main_thread() else ()
    previous = {sig: signal.signal(sig, _terminate) for sig in handled}
    try:
        code = args.fn(args)
    except GanStretchError as e:
        print(f"gan-stretch: error: {e}", file=sys.stderr)
        return 1
    except Terminated as e:
        print(f"gan-stretch: terminated by {signal.Signals(e.signum).name}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("gan-stretch: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
