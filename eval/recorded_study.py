"""The recorded-music adversarial study: does the unpaired discriminator on recordings earn its place?

    python eval/recorded_study.py --recordings data/recordings --eval data/eval/classical-opl3-22050 ... \\
        [--seeds 0 1 2] [--autoencoder runs/default/autoencoder/model.safetensors] [--extra 'data=...']

Two variants, each trained once per seed on the same data, steps, autoencoder and batches of pairs:
  recorded   --recipe (recipes/ablations/gan-recorded.yaml: the packaged default's generator
             recipe with the unpaired discriminator on training-split recordings)
  control    the same recipe with rec_adv_weight=0 rec_fm_weight=0 (everything else equal)
Scored by eval/benchmark.py (one call per model, so scores accumulate as runs finish):
  (a) held-out recordings (--recordings): naturalness (two-sample accuracy per recording, 0.5 =
      indistinguishable) and round trip (log-mel dB of r then 1/r against the excerpt); each
      recording's value averaged over the seeds first, then recorded minus control, paired by
      recording, with its 95 % bootstrap interval (gan_stretch.measures.naturalness.paired_difference);
  (b) every true-tempo set (--eval): both axes (log-mel dB and ViSQOL, and the attack measures),
      per-clip paired improvement with bootstrap intervals, as in eval/study.py.
Writes OUT/README.md's tables to OUT/study.md, OUT/paired.csv and OUT/commands.txt; reruns train and
score only what is missing (scores are reused only for the same model file, variant settings and
benchmark arguments: eval/study.py).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.launch import train_command
from eval.measures import BETTER, MEASURES
from eval.results import paired, read_rows, variant_seed, write_rows
from eval.run import Shell, finished, score, scores_key, stale, trained, variant_settings
from eval.stats import bootstrap_ci, cell
from gan_stretch.train.recipes import GanRecipe

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "recipes/ablations/gan-recorded.yaml"
BENCHMARK = str(ROOT / "eval/benchmark.py")
# the control: the recordings terms off (how their discriminator would read, and which corpus, are
# then moot, so every recorded variant of one recipe shares one control: its reading settings are
# set back to their defaults after --extra; train_variants adds recordings=--recordings)
MOOT_IN_CONTROL = ("rec_view", "rec_delta", "rec_relative")
VARIANTS = {
    "recorded": (),
    "control": (
        "rec_adv_weight=0",
        "rec_fm_weight=0",
        *(f"{k}={GanRecipe.__dataclass_fields__[k].default}" for k in MOOT_IN_CONTROL),
    ),
}
TRUTH_MEASURES = ("logmel_db", "visqol", "attack_db", "smear_db", "oversmoothing_db")
RECORDED_MEASURES = ("naturalness", "round_trip_db")  # per recording (eval/measures.py)


def per_recording(rows: list[dict], measure: str, variant: str, rate: float) -> dict[str, float]:
    """{recording: the measure averaged over its excerpts and the seeds} of one variant at one rate
    (rows: naturalness.csv / results.csv of eval/benchmark.py --recordings, with a ``variant``)."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        if r["variant"] == variant and float(r["rate"]) == rate and r.get(measure, "") not in ("", None):
            acc.setdefault(r["recording"], []).append(float(r[measure]))
    return {g: float(np.mean(v)) for g, v in acc.items() if np.isfinite(np.mean(v))}


def recorded_difference(rows: list[dict], measure: str, rate: float, seed: int = 0) -> dict:
    """recorded minus control on ``measure`` at ``rate``, paired by recording, with its 95 %
    interval. For naturalness the difference is of |accuracy - 0.5| (negative: more natural)."""
    from gan_stretch.measures.naturalness import paired_difference

    a, b = (per_recording(rows, measure, v, rate) for v in ("recorded", "control"))
    if MEASURES[measure].better == "closer to 0.5":
        a, b = ({g: abs(x - 0.5) for g, x in d.items()} for d in (a, b))
    return paired_difference(a, b, seed)


def recorded_section(recorded_rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Part (a) of the page, the held-out recordings: recorded minus control per measure and rate,
    then each variant's means; and its paired.csv rows."""
    lines, csv_rows = [], []
    rates = sorted({float(r["rate"]) for r in recorded_rows})
    if not rates:
        return ["(no recordings scored yet)"], csv_rows
    lines += ["| measure | " + " | ".join(f"{r:g}" for r in rates) + " |", "|---|" + "---|" * len(rates)]
    for m in RECORDED_MEASURES:
        cells = []
        for rate in rates:
            d = recorded_difference(recorded_rows, m, rate)
            lo, hi = d["ci"]
            cells.append(cell(d["difference"], lo, hi))
            csv_rows.append(
                {"set": "recordings", "measure": m, "rate": rate, "mean": d["difference"], "lo": lo, "hi": hi}
            )
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Means (over recordings and seeds):",
        "",
        "| variant | measure | " + " | ".join(f"{r:g}" for r in rates) + " |",
    ]
    lines.append("|---|---|" + "---|" * len(rates))
    for v in VARIANTS:
        for m in RECORDED_MEASURES:
            vals = [np.mean(list(per_recording(recorded_rows, m, v, r).values()) or [np.nan]) for r in rates]
            lines.append(f"| {v} | {m} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
    return lines, csv_rows


def truth_section(truth_rows: list[dict], seeds: list[int]) -> tuple[list[str], list[dict]]:
    """Part (b) of the page, the true-tempo sets: per set and over all sets, the paired improvement
    of recorded over control per measure and rate; and its paired.csv rows."""
    lines, csv_rows = [], []
    sets = list(dict.fromkeys(r["set"] for r in truth_rows))
    rates = sorted({r["rate"] for r in truth_rows})
    for s in [*sets, None] if sets else []:
        mine = [r for r in truth_rows if s is None or r["set"] == s]
        lines += [f"### {s or 'all sets'}", "", "| measure | " + " | ".join(f"{r:g}" for r in rates) + " | all rates |"]
        lines.append("|---|" + "---|" * (len(rates) + 1))
        for m in TRUTH_MEASURES:
            cells = []
            for rate in [*rates, None]:
                mean, lo, hi = bootstrap_ci(paired(mine, "recorded", "control", seeds, m, rate))
                cells.append(cell(mean, lo, hi))
                csv_rows.append(
                    {
                        "set": s or "all",
                        "measure": m,
                        "rate": "all" if rate is None else rate,
                        "mean": mean,
                        "lo": lo,
                        "hi": hi,
                    }
                )
            lines.append(f"| {m} ({BETTER[m]} is better) | " + " | ".join(cells) + " |")
        lines.append("")
    if not sets:
        lines.append("(no true-tempo set scored yet)")
    return lines, csv_rows


def report(truth_rows: list[dict], recorded_rows: list[dict], seeds: list[int], command: str) -> tuple[str, list]:
    """The study's page (markdown) and its paired.csv rows."""
    lines = [
        f"# The recorded-music adversarial study (seeds {', '.join(map(str, seeds))})",
        "",
        f"Regenerate (trains what is missing, scores what is not yet scored, writes this page): `{command}`",
        "",
        "## (a) Held-out recordings: recorded minus control, paired by recording",
        "",
        "Each recording's value averaged over its excerpts and the seeds first; mean and 95 % bootstrap "
        "interval over recordings. naturalness: difference of |accuracy - 0.5| (negative: the recordings "
        "variant is harder to tell from music at its own tempo). round_trip_db: log-mel dB (negative: closer "
        "to the original after r and 1/r). An interval that excludes 0 is in bold.",
        "",
    ]
    recorded_lines, recorded_csv = recorded_section(recorded_rows)
    lines += recorded_lines
    lines += [
        "",
        "## (b) True-tempo sets: improvement of recorded over control, per clip",
        "",
        "Positive = the recordings variant is better (lower log-mel, higher ViSQOL, attack/smear/over-smoothing "
        "closer to 0); each clip's measure averaged over the seeds first; 95 % bootstrap interval over clips.",
        "",
    ]
    truth_lines, truth_csv = truth_section(truth_rows, seeds)
    return "\n".join(lines + truth_lines) + "\n", recorded_csv + truth_csv


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/results/recorded-adversarial")
    p.add_argument("--runs", default="runs/recorded-study")
    p.add_argument("--recipe", default=RECIPE, help="a recipe with the recordings terms (its control: without them)")
    p.add_argument("--recordings", required=True, help="the recordings corpus (gan-stretch data recordings)")
    p.add_argument("--eval", nargs="+", required=True, help="true-tempo evaluation corpora")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--autoencoder", required=True, help="the frozen autoencoder (any model file holding one)")
    p.add_argument("--pieces", type=int, default=8, help="held-out pieces per true-tempo set")
    p.add_argument("--recorded-pieces", type=int, default=40, help="held-out excerpts of recordings")
    p.add_argument("--accelerate-config", default=str(ROOT / "recipes/accelerate/cpu.yaml"))
    p.add_argument("--extra", default="", help="overrides for every run, e.g. 'data=data/train/a steps=600'")
    p.add_argument("--no-train", action="store_true", help="score the runs that have finished, train none")
    p.add_argument("--score-only", action="store_true", help="only re-read existing scores and write the report")
    p.add_argument("-j", "--jobs", type=int, default=None)
    p.add_argument("--benchmark-extra", default="", help="options for every benchmark, e.g. '--rates 0.5 2 --seeds 1'")
    p.add_argument(
        "--name",
        default="recorded",
        help="the recorded variant's run and score folders (NAME-sK): another name keeps a second study of the "
        "same recipe (e.g. --extra rec_view=spectrogram --name recorded-spectrogram --out ...) beside the first, "
        "with the same control runs",
    )
    return p


def label(args, variant: str) -> str:
    """The folder name of ``variant``'s runs and scores (the recorded one under --name)."""
    return args.name if variant == "recorded" else variant


def as_variant(args, method: str) -> str:
    """A scored model's name (NAME-sK or control-sK) as the report's variant (recorded-sK or control-sK)."""
    name, seed = variant_seed(method)
    return f"{'recorded' if name == args.name else name}-s{seed}"


def train_variants(args, sh: Shell) -> tuple[dict[str, Path], dict[Path, dict]]:
    """Trains each variant once per seed unless told not to: {name: run folder} and each run's
    variant settings (none with --score-only)."""
    runs = Path(args.runs)
    models, settings = {}, {}
    for seed in args.seeds:
        for variant, overrides in VARIANTS.items():
            run = runs / f"{label(args, variant)}-s{seed}"
            given = (
                f"run_dir={run}",
                f"autoencoder={args.autoencoder}",
                f"recordings={args.recordings}",
                f"seed={seed}",
                "eval_pieces=0",
                *(args.extra.split() if variant == "control" else ()),
                *overrides,
                *((f"recordings={args.recordings}",) if variant == "control" else ()),
                *(args.extra.split() if variant != "control" else ()),
            )
            if not args.score_only:
                settings[run] = variant_settings(args.recipe, *given)
            if not (args.score_only or args.no_train or trained(run, settings[run])):
                sh(train_command(args.accelerate_config, args.recipe, *given))
            models[f"{label(args, variant)}-s{seed}"] = run
    return models, settings


def score_variants(args, sh: Shell, models: dict[str, Path], settings: dict) -> tuple[list[dict], list[dict]]:
    """Scores each finished run on the recordings, then (the study's first question answered for
    every run before the second) on every true-tempo set, what is not yet scored for this model
    file and settings, and reads the scores back: (truth rows, recorded rows)."""
    out = Path(args.out)
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    truth_rows, recorded_rows = [], []
    # scores are reused only for the same model file, variant settings and benchmark arguments
    ready = {
        name: not args.score_only and finished(run) and not stale(run / "model.safetensors", settings[run])
        for name, run in models.items()
    }
    for name, run in models.items():
        path = run / "model.safetensors"
        res = out / "scores" / "recordings" / name
        if ready[name]:
            benchmark = ["--pieces", str(args.recorded_pieces), "--model", f"{name}={path}", "--methods"]
            benchmark += shlex.split(args.benchmark_extra)
            command = [sys.executable, BENCHMARK, "--recordings", args.recordings, "--out", str(res)]
            command += [*benchmark, *jobs]
            score(
                res,
                scores_key(args.recordings, benchmark, path, settings[run]),
                partial(sh, command),
                "naturalness.csv",
            )
        variant = variant_seed(as_variant(args, name))[0]
        if (res / "results.csv").is_file() and (ready[name] or args.score_only):  # per excerpt: round trip, naturalness
            with open(res / "results.csv") as fh:
                recorded_rows += [{**r, "variant": variant} for r in csv.DictReader(fh)]
    for name, run in models.items():
        path = run / "model.safetensors"
        model = ["--model", f"{name}={path}", "--methods"]
        for data in args.eval:
            res = out / "scores" / Path(data).name / name
            if ready[name]:
                benchmark = ["--pieces", str(args.pieces), *model, *shlex.split(args.benchmark_extra)]
                command = [sys.executable, BENCHMARK, "--data", data, "--out", str(res), *benchmark, *jobs]
                score(res, scores_key(data, benchmark, path, settings[run]), partial(sh, command))
            if (res / "results.csv").is_file() and (ready[name] or args.score_only):
                rows = read_rows(res / "results.csv")
                truth_rows += [{**r, "set": Path(data).name, "method": as_variant(args, r["method"])} for r in rows]
    return truth_rows, recorded_rows


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sh = Shell()
    models, settings = train_variants(args, sh)
    truth_rows, recorded_rows = score_variants(args, sh, models, settings)
    command = "python eval/recorded_study.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv) if a not in ("--score-only", "--no-train")
    )
    page, csv_rows = report(truth_rows, recorded_rows, args.seeds, command)
    suffix = "" if args.name == "recorded" else f"-{args.name}"  # a second study's page beside the first
    (out / f"study{suffix}.md").write_text(page)
    if csv_rows:
        write_rows(out / f"paired{suffix}.csv", csv_rows)
    sh.write(out / f"commands{suffix}.txt")
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
