"""Validate the naturalness test (gan_stretch.measures.naturalness) where truth exists, before trusting it
where none does.

    python eval/validate_naturalness.py --data data/eval/classical-opl3-22050 data/eval/groove-freepats-44100 ... \
        --rates 0.5 2 --methods truth resample pv --seeds 3 --out docs/results/naturalness

On true-tempo sets, tempo-1 renders are "real" and each method's stretch of them at rate r is
"fake"; ``truth`` is the true render at tempo r (the same performance played at the new tempo).
A valid test scores ``truth`` at chance (it does not detect tempo itself) and plain resampling and
librosa's phase vocoder clearly above it. Folds are disjoint by piece; each seed trains fresh
classifiers. Writes table.md (accuracy per method and rate, mean over seeds, 95 % bootstrap
interval over pieces; paired differences against ``truth``; the smallest difference the test
resolves) and results.csv (one row per method, rate, seed and piece).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from tqdm import tqdm

from eval.results import write_rows
from gan_stretch.data.manifest import Corpus
from gan_stretch.measures import naturalness as nat
from gan_stretch.models.model_file import load_model, resolve_checkpoint
from gan_stretch.stretching import teachers
from gan_stretch.stretching.stretcher import Stretcher


def scores_table(per: dict, methods: list[str], rates: list[float], reference: str | None) -> list[str]:
    """Markdown rows: per (method, rate) the accuracy (mean over seeds of the mean over groups), its
    interval, and the paired difference to ``reference`` with its interval. ``per[(method, rate)]``
    is a list (one per seed) of {group: score}."""
    lines = [
        "| method | rate | accuracy | 95 % interval | " + (f"minus {reference} | 95 % interval |" if reference else ""),
        "|---|---|---|---|" + ("---|---|" if reference else ""),
    ]
    for m in methods:
        for r in rates:
            runs = per.get((m, r))
            if not runs:
                continue
            mean = seed_mean(runs)
            lo, hi = nat.bootstrap_ci(list(mean.values()))
            row = f"| {m} | {r:g} | {np.mean(list(mean.values())):.3f} | [{lo:.3f}, {hi:.3f}] |"
            if reference and m != reference and (reference, r) in per:
                d = nat.paired_difference(mean, seed_mean(per[(reference, r)]))
                row += f" {d['difference']:+.3f} | [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] |"
            elif reference:
                row += " | |"
            lines.append(row)
    return lines


def seed_mean(runs: list[dict]) -> dict[str, float]:
    """Each group's score averaged over seeds (the groups every seed scored)."""
    groups = set.intersection(*(set(r) for r in runs))
    return {g: float(np.mean([r[g] for r in runs])) for g in sorted(groups)}


def resolution(per: dict, methods: list[str], rates: list[float], reference: str) -> float:
    """Median half-width of the paired 95 % intervals against ``reference``: differences in
    accuracy larger than this are resolved by the test on these sets."""
    widths = []
    for m in methods:
        for r in rates:
            if m != reference and (m, r) in per and (reference, r) in per:
                lo, hi = nat.paired_difference(seed_mean(per[(m, r)]), seed_mean(per[(reference, r)]))["ci"]
                widths.append((hi - lo) / 2)
    return float(np.median(widths)) if widths else float("nan")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="true-tempo corpora (their held-out items)")
    p.add_argument("--rates", type=float, nargs="+", default=[0.5, 2.0])
    p.add_argument("--methods", nargs="+", default=["truth", "resample", "pv"], help="truth, teachers, models")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="a model to score (default)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--steps", type=int, default=400, help="classifier training steps per fold")
    p.add_argument("--out", required=True)
    return p


def load_models(args) -> dict[str, Stretcher]:
    """{name: Stretcher} of each --model; exits with an error on a method that is none of truth, a
    teacher or a model."""
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = Stretcher(load_model(resolve_checkpoint(path or name)))
    for m in args.methods:
        if m != "truth" and m not in teachers.TEACHERS and m not in models:
            raise SystemExit(f"error: unknown method {m!r} (truth, a teacher, or a --model NAME)")
    return models


def make_clips(args, models: dict[str, Stretcher]) -> tuple[list[nat.Clip], dict[tuple[str, float], list[nat.Clip]]]:
    """The tempo-1 renders' patches ("real") and each (method, rate)'s stretches' ("fake"), one
    group per held-out piece."""
    real: list[nat.Clip] = []
    fake: dict[tuple[str, float], list[nat.Clip]] = {}
    for path in args.data:
        corpus = Corpus(path)
        sr = corpus.sample_rate
        for item in tqdm(corpus.split("heldout"), desc=Path(path).name, unit="piece"):
            group = f"{Path(path).name}/{item.id}"
            src = corpus.load(item, 1.0)
            real.append(nat.Clip(group, *nat.patches(src, sr)))
            for r in args.rates:
                for m in args.methods:
                    if m == "truth":
                        y = corpus.load(item, r)
                    elif m in models:
                        y = models[m].stretch(src, sr, r)
                    else:
                        y = teachers.get(m, exact_length=False)(src[None], sr, r)[0]
                    fake.setdefault((m, r), []).append(nat.Clip(group, *nat.patches(y, sr)))
    return real, fake


def two_sample_tests(args, real: list[nat.Clip], fake: dict) -> tuple[dict[tuple[str, float], list[dict]], list[dict]]:
    """Each (method, rate)'s test against the real clips, once per seed: its per-piece accuracies
    per seed, and the rows of results.csv."""
    per: dict[tuple[str, float], list[dict]] = {}
    rows = []
    for (m, r), clips in tqdm(fake.items(), desc="two-sample tests", unit="test"):
        for seed in range(args.seeds):
            res = nat.two_sample_test(real, clips, folds=args.folds, seed=seed, steps=args.steps)
            per.setdefault((m, r), []).append(res["per_group"])
            rows += [
                {"method": m, "rate": r, "seed": seed, "group": g, "accuracy": a} for g, a in res["per_group"].items()
            ]
    return per, rows


def page(args, argv, real: list[nat.Clip], per: dict) -> list[str]:
    """The lines of table.md: the accuracies, their differences against truth and the smallest
    difference resolved."""
    reference = "truth" if "truth" in args.methods else None
    lines = [
        f"# naturalness test on true-tempo sets: {len({c.group for c in real})} held-out pieces of "
        f"{', '.join(Path(d).name for d in args.data)}",
        "",
        f"Accuracy of fresh classifiers telling each method's stretch from tempo-1 renders ({args.folds} folds "
        f"disjoint by piece, {args.steps} steps, mean of {args.seeds} seeds; 0.5: indistinguishable). "
        "95 % bootstrap intervals over pieces; differences paired by piece.",
        "",
        *scores_table(per, args.methods, args.rates, reference),
    ]
    if reference:
        lines += [
            "",
            f"Smallest difference resolved (median half-width of the paired 95 % intervals against {reference}): "
            f"{resolution(per, args.methods, args.rates, reference):.3f}",
        ]
    lines += [
        "",
        "Command: python eval/validate_naturalness.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    ]
    return lines


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    models = load_models(args)
    real, fake = make_clips(args, models)
    per, rows = two_sample_tests(args, real, fake)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "results.csv", rows)
    lines = page(args, argv, real, per)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
