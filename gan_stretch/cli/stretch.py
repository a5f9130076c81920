"""``gan-stretch stretch``: one file, or every audio file of a folder (``--jobs`` worker processes)."""

from __future__ import annotations

import sys


def stretch_command(args) -> int:
    """``gan-stretch stretch`` and ``gan-stretch shift`` (a stretch at rate 1 with a pitch)."""
    import tempfile

    from gan_stretch.io.audio import is_stdin, stdin_to_file

    if getattr(args, "realtime", False):  # chunks in, chunks out (standard input is not copied first)
        return realtime_command(args)
    if is_stdin(args.input):  # a pipe: copied whole to a temporary file (the stretch seeks in its input)
        with tempfile.TemporaryDirectory(prefix="gan-stretch-stdin-") as folder:
            args.input = str(stdin_to_file(folder, args.input_format))
            return _stretch_command(args, piped=True)
    if args.input_format is not None:
        from gan_stretch.errors import AudioError

        raise AudioError("--input-format is for input '-' (standard input); a file's format is read from it")
    return _stretch_command(args)


def _stretch_command(args, piped: bool = False) -> int:
    from pathlib import Path

    from gan_stretch.errors import AudioError
    from gan_stretch.io.audio import is_stdout
    from gan_stretch.stretching.stretcher import Stretcher

    rate, semitones, time_map = checked_options(args)
    src, dst = Path(args.input), Path(args.output)
    if is_stdout(args.output) and sys.stdout.isatty():
        raise AudioError(
            f"output {args.output!r} writes WAV to standard output, which is a terminal: pipe it into a "
            "program (| sox -t wav - out.wav) or give a file name"
        )
    jobs, skipped, nested = checked_jobs(args, src, dst, piped)
    settings = stretcher_settings(args)  # for this process's Stretcher and each folder worker's
    stretcher = Stretcher(args.checkpoint, **settings)
    if not src.is_dir():
        return stretch_one(args, stretcher, src, dst, (rate, args.duration, time_map, semitones))
    failed = stretch_folder(args, stretcher, settings, jobs, src, dst, (rate, args.duration, time_map, semitones))
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not audio gan-stretch reads: {_names(skipped)}")
    if nested:
        print(
            f"skipped {len(nested)} audio file(s) in the output folder {dst}, which is inside the input "
            f"folder (never read as input): {_names(nested)}"
        )
    return 1 if failed else 0


def checked_options(args) -> tuple:
    """(rate or None, semitones, time map pairs or None) from the options, each checked."""
    from gan_stretch.dsp.pitch import check_semitones
    from gan_stretch.dsp.timemap import check_rate, read
    from gan_stretch.errors import AudioError, ConfigError
    from gan_stretch.runtime import parallel

    rate = tempo_rate(args.tempo) if args.tempo is not None else args.rate
    given = [
        name
        for name, v in (("--rate", args.rate), ("--tempo", args.tempo), ("--duration", args.duration))
        if v is not None
    ]
    if len(given) > 1:
        raise AudioError(f"give one of --rate, --tempo and --duration, not {' and '.join(given)}")
    if rate is None and args.duration is None and args.time_map is None:
        raise AudioError("give --rate, --tempo, --duration or --time-map")
    if rate is not None:
        rate = check_rate(rate)
    semitones = 0.0 if args.pitch is None else check_semitones(args.pitch)
    if args.jobs is not None:
        parallel.check_jobs(args.jobs)
    if not 0 <= args.griffin_lim <= 1000:  # the Stretcher's own check would name its argument, griffin_lim
        raise ConfigError(f"--griffin-lim must be an iteration count in [0, 1000], got {args.griffin_lim}")
    return rate, semitones, read(args.time_map) if args.time_map else None


def checked_jobs(args, src, dst, piped: bool) -> tuple[list, list, list]:
    """(input, output) pairs, files skipped as not audio, audio files skipped inside the output
    folder; every output checked (and a single input's header read) before any work."""
    from gan_stretch.errors import AudioError
    from gan_stretch.io.audio import AudioReader, check_format, check_output_path, check_sample_rate, is_stdout

    to_stdout = is_stdout(args.output)
    if src.is_dir():  # a whole folder: every audio file in it, same names, same formats
        if to_stdout:
            raise AudioError(f"the input {src} is a folder; its output must be a folder too, not standard output")
        jobs, skipped, nested = folder_jobs(src, dst)
        for f, out in jobs:
            check_output_path(out, inputs=(f,), create_folder=True)
        return jobs, skipped, nested
    if not src.exists():
        raise AudioError(f"input file not found: {src}")
    check_output_path(dst, inputs=(src,))
    if args.no_clobber and not to_stdout and dst.exists():
        raise AudioError(f"{dst} exists (not overwritten: --no-clobber)")
    with AudioReader(src) as reader:  # the input's header and the output's format, before any work
        check_sample_rate(reader.sample_rate, "standard input" if piped else reader.name)
        check_format(dst, reader.sample_rate, reader.channels)
    return [(src, dst)], [], []


def stretch_one(args, stretcher, src, dst, how: tuple) -> int:
    """One file (or standard output) with a progress bar on a terminal; ``how``: (rate, duration,
    time map, semitones)."""
    from tqdm import tqdm

    from gan_stretch.io.audio import is_stdout

    rate, duration, time_map, semitones = how
    to_stdout = is_stdout(args.output)
    with tqdm(desc="audio", unit="s", leave=False, disable=not sys.stderr.isatty()) as seconds:

        def progress(done, total):
            seconds.total, seconds.n = round(total, 1), round(done, 1)
            seconds.refresh()

        info = stretcher.stretch_file(
            src,
            dst,
            rate,
            duration=duration,
            time_map=time_map,
            progress=progress,
            clobber=not args.no_clobber,
            semitones=semitones,
        )
    _warn_clipped("standard output" if to_stdout else dst, info)
    print(
        f"wrote {'standard output (WAV)' if to_stdout else dst} ({info['frames'] / info['sample_rate']:.2f} s, "
        f"{info['sample_rate']} Hz, {info['channels']} channel(s))",
        file=sys.stderr if to_stdout else sys.stdout,  # standard output carries the audio
    )
    return 0


def stretch_folder(args, stretcher, settings: dict, jobs: list, src, dst, how: tuple) -> list:
    """Every (input, output) pair of a folder in worker processes; prints a line per failure and
    a summary. Returns the names of the files that failed, in file order."""
    from tqdm import tqdm

    from gan_stretch.runtime import parallel

    rate, duration, time_map, semitones = how
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
        [(f, out, rate, duration, time_map, not args.no_clobber, semitones) for f, out in todo],
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
    return failed


def stretcher_settings(args) -> dict:
    """The Stretcher's keyword arguments from the command's options (every stretch the command makes)."""
    return dict(
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


def realtime_command(args) -> int:
    """``gan-stretch stretch --realtime``: the input is stretched as it arrives
    (:meth:`gan_stretch.stretching.stretcher.Stretcher.stream`) and the output written as it is final;
    standard input and output are WAV streams (:mod:`gan_stretch.io.wavpipe`)."""
    from gan_stretch.io.audio import check_output_path, check_sample_rate, is_stdin, is_stdout
    from gan_stretch.stretching.stretcher import Stretcher

    rate = checked_realtime_options(args)
    to_stdout, from_stdin = is_stdout(args.output), is_stdin(args.input)
    source, fmt = open_stream_input(args, to_stdout, from_stdin)
    check_sample_rate(fmt.sr, "standard input" if from_stdin else source.name)
    if not to_stdout:
        check_output_path(args.output, inputs=() if from_stdin else (args.input,))
    stretcher = Stretcher(args.checkpoint, **stretcher_settings(args))
    stream = stretcher.stream(fmt.sr, fmt.channels, rate, block_frames=args.block_frames)
    clipped, frames = write_stream(args, stream, source, fmt, to_stdout, from_stdin)
    if clipped:
        print(f"gan-stretch: warning: {clipped} samples clipped at full scale", file=sys.stderr)
    print(
        f"wrote {'standard output (WAV)' if to_stdout else args.output} ({frames / fmt.sr:.2f} s, {fmt.sr} Hz, "
        f"{fmt.channels} channel(s); real time, latency {stream.latency / fmt.sr:.2f} s)",
        file=sys.stderr if to_stdout else sys.stdout,
    )
    return 0


def checked_realtime_options(args) -> float:
    """The rate of a --realtime stretch; the options it cannot honour refused by name."""
    from gan_stretch.dsp.timemap import check_rate
    from gan_stretch.errors import AudioError, ConfigError

    for flag, value in (("--duration", args.duration), ("--time-map", args.time_map), ("--pitch", args.pitch)):
        if value is not None:
            raise AudioError(f"--realtime plays at a rate (--rate or --tempo); {flag} needs the whole input first")
    if args.jobs is not None:
        raise AudioError("--realtime stretches one stream; --jobs is for folders")
    rate = tempo_rate(args.tempo) if args.tempo is not None else args.rate
    if rate is None:
        raise AudioError("--realtime needs --rate or --tempo")
    rate = check_rate(rate)
    if not 1 <= args.block_frames <= 4096:
        raise ConfigError(f"--block-frames must be a frame count in [1, 4096], got {args.block_frames}")
    return rate


def open_stream_input(args, to_stdout: bool, from_stdin: bool):
    """(the input: a WAV stream on standard input or a file reader, its format: sr, channels,
    bits, float_in)."""
    from pathlib import Path
    from types import SimpleNamespace

    from gan_stretch.errors import AudioError
    from gan_stretch.io.audio import AudioReader
    from gan_stretch.io.wavpipe import WavReader

    if to_stdout and sys.stdout.isatty():
        raise AudioError("--realtime writes WAV to standard output, which is a terminal: pipe it into a program")
    if from_stdin and (sys.stdin is None or sys.stdin.isatty()):
        raise AudioError("input '-' reads standard input, which is a terminal: pipe WAV audio into it")
    if not from_stdin and Path(args.input).is_dir():
        raise AudioError(f"--realtime stretches one stream; {args.input} is a folder")
    if from_stdin:
        source = WavReader(sys.stdin.fileno())
        fmt = SimpleNamespace(sr=source.sample_rate, channels=source.channels, bits=source.bits)
        fmt.float_in = source.kind[1] == "f"
    else:
        source = AudioReader(args.input)
        fmt = SimpleNamespace(
            sr=source.sample_rate, channels=source.channels, float_in=source.subtype in ("FLOAT", "DOUBLE")
        )
        fmt.bits = {"PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 32}.get(source.subtype, 16)
    return source, fmt


def write_stream(args, stream, source, fmt, to_stdout: bool, from_stdin: bool) -> tuple[int, int]:
    """Feeds the input to ``stream`` as it is read and writes the output as it is final, to
    standard output (WAV) or a file; returns (samples clipped, frames written)."""
    from types import SimpleNamespace

    from gan_stretch.errors import AudioError
    from gan_stretch.io.audio import AudioWriter
    from gan_stretch.io.wavpipe import WavWriter

    def chunks():
        if from_stdin:
            while (x := source.read()) is not None:
                yield x
            return
        with source:
            for lo in range(0, source.frames, 4096):
                yield source.read(lo, min(lo + 4096, source.frames)).cpu().numpy()

    if to_stdout:
        writer = WavWriter(sys.stdout.buffer, fmt.sr, fmt.channels, 32 if fmt.float_in else 24 if fmt.bits > 16 else 16)
        for x in chunks():
            writer.write(stream.process(x))
        if stream.fed == 0:
            raise AudioError("standard input held no audio samples" if from_stdin else f"{source.name} is empty")
        writer.write(stream.finish())
        return writer.clipped, writer.frames
    # the input's sample format (a WAV stream's: PCM 8-32 bit or float), as for a file
    subtype = {8: "PCM_U8", 16: "PCM_16", 24: "PCM_24", 32: "FLOAT" if fmt.float_in else "PCM_32", 64: "DOUBLE"}
    like = SimpleNamespace(format="WAV", subtype=subtype.get(fmt.bits)) if from_stdin else source
    with AudioWriter(args.output, fmt.sr, fmt.channels, like=like, clobber=not args.no_clobber) as writer:
        for x in chunks():
            writer.write(stream.process(x))
        if stream.fed == 0:
            raise AudioError("standard input held no audio samples")
        writer.write(stream.finish())
    return writer.clipped, writer.frames


_STRETCHER = None  # a folder job's Stretcher, made once per process by _load_stretcher


def _load_stretcher(checkpoint, settings: dict | None, unload: bool = False) -> None:
    """This process's Stretcher for a folder's files: ``checkpoint`` with the command's ``settings``
    (the keyword arguments of the Stretcher the command made first)."""
    global _STRETCHER
    from gan_stretch.stretching.stretcher import Stretcher

    _STRETCHER = None if unload else Stretcher(checkpoint, **settings)


def _stretch_file(job) -> dict:
    """One file of a folder (in a worker process when --jobs > 1)."""
    f, out, rate, duration, time_map, clobber, semitones = job
    return _STRETCHER.stretch_file(
        f, out, rate, duration=duration, time_map=time_map, clobber=clobber, semitones=semitones
    )


def tempo_rate(text: str) -> float:
    """``--tempo FROM:TO`` (beats per minute) as a rate: TO / FROM (120:96 plays at 0.8)."""
    import math

    from gan_stretch.errors import RateError

    try:
        old, new = (float(v) for v in text.split(":"))
    except ValueError:
        raise RateError(f"--tempo must be FROM:TO in beats per minute such as 120:96, got {text!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in (old, new)):
        raise RateError(f"--tempo must be two positive numbers of beats per minute such as 120:96, got {text!r}")
    rate = new / old
    from gan_stretch.dsp.timemap import MAX_RATE, MIN_RATE

    if not MIN_RATE <= rate <= MAX_RATE:
        raise RateError(f"--tempo {text} is rate {rate:.4g} ({new:g} / {old:g} bpm), outside [{MIN_RATE}, {MAX_RATE}]")
    return rate


def attack_span(text: str | None) -> tuple[int, int] | None:
    """``--attack-span BEFORE:AFTER`` as two frame counts (None: the Stretcher's default)."""
    from gan_stretch.errors import ConfigError

    if text is None:
        return None
    try:
        before, after = (int(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--attack-span must be BEFORE:AFTER frame counts such as 2:2, got {text!r}") from None
    return before, after


def folder_jobs(src, dst) -> tuple[list, list, list]:
    """(input file, output file) pairs for a folder of audio, the files left out as not audio,
    and the audio files left out because they are in the output folder.

    Hidden files and folders (macOS ``._x.wav`` resource forks, ``.x.partial-*`` files of an
    interrupted write) are never audio to stretch; an output folder inside the input folder is
    never read as input (a second run would stretch the first run's outputs)."""
    from gan_stretch.errors import AudioError
    from gan_stretch.io.audio import FORMATS

    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r:
        raise AudioError("output folder is the input folder; choose another")
    jobs, skipped, nested = [], [], []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.resolve() == dst_r or dst_r in p.resolve().parents:
            if p.suffix.lower() in FORMATS:
                nested.append(rel)
            continue
        if p.suffix.lower() in FORMATS:
            jobs.append((p, dst / rel))
        else:
            skipped.append(rel)
    if not jobs:
        left = skipped + [f"{p} (in the output folder)" for p in nested]
        raise AudioError(f"no audio files in {src}" + (f" (skipped: {_names(left)})" if left else ""))
    return jobs, skipped, nested


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
