"""The ``gan-stretch`` command: its arguments (:func:`parser`) and :func:`main` (signals, error lines,
exit codes). The subcommands' work: ``stretch.py`` (stretch, shift), ``data.py`` (data midi,
data teacher, data recordings), ``gan_stretch.train.run`` (train)."""

from __future__ import annotations

import argparse
import sys

from gan_stretch.cli.data import data_midi, data_recordings, data_teacher
from gan_stretch.cli.stretch import stretch_command
from gan_stretch.errors import GanStretchError

__all__ = ["main", "parser", "Terminated"]


def _train(args) -> None:
    from gan_stretch.train import run

    run(args.recipe, args.overrides)


def _stretch_options(s: argparse.ArgumentParser) -> None:
    """The options ``stretch`` and ``shift`` share: the model, its settings, folders, pipes."""
    s.add_argument(
        "--checkpoint",
        default=None,
        help="model .safetensors, or a packaged model: default (the generator, trained without adversarial terms) or mapper (the frame-wise baseline)",
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
        "--attack-frames",
        choices=("auto", "refine", "hold"),
        default="auto",
        help="what Griffin-Lim does to the frames of attacks played at speed 1: auto (default) leaves "
        "them as the input has them where the music is slowed down and refines them where it is sped "
        "up; refine: everywhere; hold: never (docs/results/attack-frames/)",
    )
    s.add_argument(
        "--attack-span",
        default=None,
        metavar="BEFORE:AFTER",
        help="frames before and after each attack played at speed 1, 0 to 8 each (default 2:2: every "
        "frame whose window reaches the onset; docs/results/attack-span/)",
    )
    s.add_argument(
        "--no-dense-attacks",
        action="store_true",
        help="attacks closer together than the span are stretched with the music around them instead "
        "of getting shorter regions (docs/results/dense/)",
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
    s.add_argument(
        "--input-format",
        default=None,
        metavar="EXT",
        help="input '-': the format of standard input when it is not WAV or FLAC (ogg, aiff, mp3, ...)",
    )


def parser() -> argparse.ArgumentParser:
    from gan_stretch.data.manifest import DEFAULT_RATES
    from gan_stretch.version import __version__

    p = argparse.ArgumentParser(prog="gan-stretch", description="Neural time stretching of music.")
    p.add_argument("--version", action="version", version=f"gan-stretch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "stretch",
        help="stretch an audio file or a folder of them (rate 2 halves the duration)",
        description="Change the duration of music and keep its pitch (or move it with --pitch). "
        "INPUT and OUTPUT '-' read and write standard input and output, for pipes: "
        "sox in.wav -t wav - | gan-stretch stretch - - --rate 0.8 | sox -t wav - out.wav",
    )
    s.add_argument("input", help="audio file (wav, flac, ogg, ...), folder, or '-' for standard input")
    s.add_argument(
        "output", help="output file (its extension picks the format), folder, or '-' for WAV on standard output"
    )
    s.add_argument("--rate", default=None, help="speed factor in [0.25, 4] (2 halves the duration)")
    s.add_argument("--duration", type=float, default=None, help="target duration in seconds (instead of --rate)")
    s.add_argument(
        "--tempo",
        default=None,
        metavar="FROM:TO",
        help="from one tempo to another in beats per minute, e.g. 120:96 (rate TO / FROM; instead of --rate)",
    )
    s.add_argument(
        "--time-map", default=None, help="Rubber Band time map: lines 'source_frame target_frame' (sample indices)"
    )
    s.add_argument(
        "--pitch",
        default=None,
        metavar="SEMITONES",
        help="also shift the pitch by this many semitones, -24 to 24 (e.g. -2, 0.5); the duration "
        "is set by the rate, tempo, duration or time map as without it",
    )
    s.add_argument(
        "--realtime",
        action="store_true",
        help="stretch the input as it arrives and write the output as it is final (with --rate or "
        "--tempo; '-' reads and writes WAV streams): no pass over the whole input, a latency of "
        "about 1 to 2.5 s (docs/results/realtime/)",
    )
    s.add_argument(
        "--block-frames",
        type=int,
        default=16,
        help="--realtime: output frames per block (default 16); fewer lower the latency and cost more",
    )
    _stretch_options(s)
    s.set_defaults(fn=stretch_command)

    sh = sub.add_parser(
        "shift",
        help="shift the pitch of an audio file or a folder of them, keeping the duration",
        description="Shift the pitch by SEMITONES and keep the duration: the music is stretched to "
        "2^(SEMITONES/12) times its length, then resampled back to it (soxr), as librosa and "
        "Rubber Band do. INPUT and OUTPUT '-' are standard input and output.",
    )
    sh.add_argument("input", help="audio file, folder, or '-' for standard input")
    sh.add_argument("output", help="output file, folder, or '-' for WAV on standard output")
    sh.add_argument("pitch", metavar="SEMITONES", help="semitones, -24 to 24: 12 is an octave up, -2 a tone down")
    _stretch_options(sh)
    sh.set_defaults(fn=stretch_command, rate="1", duration=None, tempo=None, time_map=None)

    d = sub.add_parser("data", help="build training and evaluation corpora")
    dsub = d.add_subparsers(dest="source", required=True)
    m = dsub.add_parser("midi", help="true-tempo pairs rendered from MIDI: music21 pieces, ensembles, grooves")
    m.add_argument("--out", required=True, help="corpus folder: manifest.json and audio/ (a rerun reuses its renders)")
    m.add_argument(
        "--family",
        choices=("classical", "ensemble", "groove", "dense-groove"),
        default="classical",
        help="classical: music21 pieces, one GM program per item; ensemble: multi-part scores, each "
        "part on its own program; groove: generated drums, bass, comping and lead; dense-groove: grooves "
        "with 16th hats, ghost notes and rolls at 100 to 180 bpm",
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
    m.add_argument(
        "--synth",
        choices=("fluidsynth", "timidity"),
        default="fluidsynth",
        help="the MIDI synthesizer: fluidsynth (with .sf2/.sf3 soundfonts) or timidity (with .cfg patch sets)",
    )
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
    t.add_argument("--out", required=True, help="corpus folder: manifest.json and audio/")
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
        q.add_argument(
            "--rates",
            type=float,
            nargs="+",
            default=list(DEFAULT_RATES),
            help=f"speeds of the stretched versions beside rate 1, each above 0 (default {' '.join(map(str, DEFAULT_RATES))})",
        )
        q.add_argument(
            "--seconds", type=float, default=10.0, help="length of each item at rate 1, in seconds (default 10)"
        )
        q.add_argument(
            "--heldout",
            type=float,
            default=0.25,
            help="fraction of pieces held out for evaluation, 0 to 1 (default 0.25)",
        )
        q.add_argument("--sample-rate", type=int, default=22050, help="sample rate of the audio in Hz (default 22050)")
    m.set_defaults(fn=data_midi)
    t.set_defaults(fn=data_teacher)
    rec = dsub.add_parser(
        "recordings",
        help="excerpts of recorded music from Debian packages (orchestral, band, electronic), split by recording",
    )
    rec.add_argument("--out", required=True, help="corpus folder (manifest.json and audio/)")
    rec.add_argument("--seconds", type=float, default=10.0, help="excerpt length in seconds")
    rec.add_argument("--excerpts", type=int, default=3, help="most excerpts per recording (one per 45 s of it)")
    rec.add_argument(
        "--heldout", type=float, default=0.4, help="fraction of each package's recordings held out for evaluation"
    )
    rec.set_defaults(fn=data_recordings)

    r = sub.add_parser(
        "train",
        help="run a recipe in this process (accelerate launch -m gan_stretch.train does the same on any devices)",
    )
    r.add_argument("recipe", help="recipe file (recipes/*.yaml): the stage, data, network and training settings")
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


NUMBER_OPTIONS = ("--rate", "--duration", "--pitch", "--seconds", "--heldout")


def _joined_numbers(argv: list[str]) -> list[str]:
    """``--rate -inf`` as ``--rate=-inf``: argparse takes only plain negative numbers (-2, -0.5)
    as an option's value, and would say "expected one argument" for -inf or -1e3; joined, the
    value reaches the option's own check and its message."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in NUMBER_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            try:
                float(argv[i + 1])
            except ValueError:
                pass
            else:
                out.append(f"{a}={argv[i + 1]}")
                i += 2
                continue
        out.append(a)
        i += 1
    return out


def main(argv=None) -> int:
    import signal
    import threading

    argv = _joined_numbers(sys.argv[1:] if argv is None else [str(a) for a in argv])
    args = parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    handled = (signal.SIGTERM, signal.SIGHUP) if main_thread else ()
    previous = {sig: signal.signal(sig, _terminate) for sig in handled}
    if main_thread and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a parent that ignores Ctrl-C (nohup, a background job of a script) hands that on; the
        # folder workers answer it all the same, so this process must stop with them (one
        # "interrupted" line, not "a worker process died" for every file)
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
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
