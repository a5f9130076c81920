"""The ``gan-stretch`` command."""
from __future__ import annotations

import argparse
import sys

from .errors import GanStretchError


def _stretch(args) -> None:
    from .audio import check_output_path, load, save
    from .pipeline import Stretcher
    from .spectral import check_rate

    rate = check_rate(args.rate)
    wave, sr = load(args.input)
    out = check_output_path(args.output, inputs=(args.input,))
    stretcher = Stretcher(args.checkpoint, device=args.device, griffin_lim=args.griffin_lim)
    y = stretcher.stretch(wave, sr, rate)
    save(out, y, sr)
    print(f"wrote {out} ({y.shape[-1] / sr:.2f} s, {sr} Hz, {y.shape[0]} channel(s))")


def _data_midi(args) -> None:
    from .data.corpus import DEFAULT_PROGRAMS, build_true_tempo

    c = build_true_tempo(args.out, pieces=args.pieces, heldout=args.heldout, seconds=args.seconds,
                         rates=args.rates, programs=args.programs or DEFAULT_PROGRAMS,
                         programs_per_piece=args.programs_per_piece, sample_rate=args.sample_rate,
                         soundfont=args.soundfont)
    print(f"{c.root}: {len(c.split('train'))} training and {len(c.split('heldout'))} held-out items")


def _data_teacher(args) -> None:
    from .data.corpus import build_teacher

    c = build_teacher(args.audio, args.out, teacher=args.teacher, rates=args.rates, seconds=args.seconds,
                      excerpts=args.excerpts, heldout=args.heldout, sample_rate=args.sample_rate)
    print(f"{c.root}: {len(c.split('train'))} training and {len(c.split('heldout'))} held-out items")


def _train(args) -> None:
    from .train import run

    run(args.recipe, args.overrides)


def parser() -> argparse.ArgumentParser:
    from .data.corpus import DEFAULT_RATES

    p = argparse.ArgumentParser(prog="gan-stretch", description="Neural time stretching of music.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stretch", help="stretch an audio file (rate 2 halves the duration)")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--rate", required=True, help="speed factor in [0.25, 4]")
    s.add_argument("--checkpoint", default=None, help="model .safetensors (default: the packaged model)")
    s.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    s.add_argument("--griffin-lim", type=int, default=16, help="phase refinement iterations")
    s.set_defaults(fn=_stretch)

    d = sub.add_parser("data", help="build training and evaluation corpora")
    dsub = d.add_subparsers(dest="source", required=True)
    m = dsub.add_parser("midi", help="true-tempo pairs rendered from the music21 corpus")
    m.add_argument("--out", required=True)
    m.add_argument("--pieces", type=int, default=32)
    m.add_argument("--programs", type=int, nargs="*", default=None, help="General MIDI programs to cycle through")
    m.add_argument("--programs-per-piece", type=int, default=1)
    m.add_argument("--soundfont", default=None, help=".sf2 path or name (default: TimGM6mb)")
    t = dsub.add_parser("teacher", help="recorded audio stretched by a classical stretcher")
    t.add_argument("--audio", required=True, help="folder of wav/flac/ogg files")
    t.add_argument("--out", required=True)
    t.add_argument("--teacher", default="pv", help="pv | rubberband | wsola | hptsm")
    t.add_argument("--excerpts", type=int, default=3, help="excerpts per file")
    for q in (m, t):
        q.add_argument("--rates", type=float, nargs="+", default=list(DEFAULT_RATES))
        q.add_argument("--seconds", type=float, default=10.0)
        q.add_argument("--heldout", type=float, default=0.25, help="fraction of pieces held out for evaluation")
        q.add_argument("--sample-rate", type=int, default=22050)
    m.set_defaults(fn=_data_midi)
    t.set_defaults(fn=_data_teacher)

    r = sub.add_parser("train", help="run a recipe in this process (accelerate launch -m gan_stretch.train "
                                     "does the same on any devices)")
    r.add_argument("recipe")
    r.add_argument("overrides", nargs="*", help="key=value")
    r.set_defaults(fn=_train)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except GanStretchError as e:
        print(f"gan-stretch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gan-stretch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
