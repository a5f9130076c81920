"""``gan-stretch data midi``, ``data teacher`` and ``data recordings``: corpora built from the command line
(``gan_stretch.data.corpus``)."""

from __future__ import annotations


def data_midi(args) -> None:
    from gan_stretch.data.corpus import build_true_tempo
    from gan_stretch.data.items import DEFAULT_PROGRAMS

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
    _report(c)


def data_teacher(args) -> None:
    from gan_stretch.data.teacher_corpora import build_teacher

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
    _report(c)


def data_recordings(args) -> None:
    from gan_stretch.data.recordings import build_recordings

    _report(build_recordings(args.out, seconds=args.seconds, excerpts=args.excerpts, heldout=args.heldout))


def _report(c) -> None:
    """The line a data command ends with: the corpus and its items per split."""
    print(f"{c.root}: {len(c.split('train'))} training and {len(c.split('heldout'))} held-out items")
