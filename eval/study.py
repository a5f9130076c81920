"""The adversarial study: does the discriminator earn its place? One command trains and scores it.

    python eval/study.py --out docs/results/adversarial --eval data/eval/classical-opl3 data/eval/classical-musescore \
        [--seeds 0 1 2] [--adv-weights 0.3 3] [--autoencoder runs/default/autoencoder/model.safetensors]

Variants (recipe files; each trained once per seed on the same data, steps and autoencoder):
  mapper        recipes/default/mapper.yaml           the supervised frame-wise baseline
  gan-no-adv    recipes/ablations/gan-no-adv.yaml     the generator, supervised terms only
  gan           recipes/default/gan.yaml              the generator with both discriminators (latent
                                                      and spectrogram)
plus, on seed 0, the latent discriminator alone (recipes/ablations/gan-latent-d.yaml) and a sweep of
the adversarial weight w (every adversarial and feature-matching weight scaled by w, the
supervised terms fixed): w = 0 is gan-no-adv, w = 1 is gan. Every model is scored by eval/benchmark.py on each
evaluation set (held-out pieces, soundfonts never trained on) with every measure; then per-clip
paired differences (gan minus gan-no-adv, gan minus mapper: each clip's measure averaged over the
seeds first) with bootstrap 95% confidence intervals (resampling clips), per rate and measure.
Writes OUT/study.md, OUT/paired.csv and OUT/commands.txt; reuses finished runs and scores. Scores
are reused only for what they were made of (OUT/scores/SET/NAME/scored.json: the set, pieces and
methods, the model file's hash and the settings hash of the variant): after an edit of a variant's
recipe, its run refuses to resume (train elsewhere, or remove the run) and its model is scored anew
once retrained; a model trained with other settings than its variant now gives is not scored.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np

from launch import train_command  # eval/launch.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
BETTER = {
    "logmel_db": "lower",
    "visqol": "higher",
    "attack_db": "closer to 0",
    "smear_db": "closer to 0",
    "attack_high_db": "closer to 0",
    "smear_high_db": "closer to 0",
    "oversmoothing_db": "closer to 0",
    "two_sample_accuracy": "closer to 0.5",
}
MEASURES = tuple(BETTER)  # the measures compared, in the order of the reports
VARIANTS = {
    "mapper": "recipes/default/mapper.yaml",
    "gan-no-adv": "recipes/ablations/gan-no-adv.yaml",
    "gan": "recipes/default/gan.yaml",
}
ABLATIONS = {"gan-latent-d": "recipes/ablations/gan-latent-d.yaml"}  # seed 0 only
PAIRS = (("gan", "gan-no-adv"), ("gan", "mapper"), ("gan-no-adv", "mapper"), ("gan-latent-d", "gan-no-adv"))


class Shell:
    """Runs commands from the project root, each echoed and kept for commands.txt."""

    def __init__(self):
        self.commands: list[str] = []

    def __call__(self, cmd: list[str]) -> None:
        self.commands.append(shlex.join(cmd))
        print("$", self.commands[-1], flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)

    def write(self, path: Path) -> None:
        """The commands run, one per line (nothing when none ran)."""
        if self.commands:
            path.write_text("\n".join(self.commands) + "\n")


def finished(run_dir: Path) -> bool:
    """Whether a training run has reached its last step (its checkpoint says so)."""
    from gan_stretch.errors import GanStretchError
    from gan_stretch.io import checkpoint

    try:
        meta = checkpoint.load(run_dir / "checkpoints" / "last.safetensors")[1]
    except GanStretchError:
        return False
    return meta.get("step") == meta.get("recipe", {}).get("steps")


def variant_settings(recipe: str, *overrides: str) -> str:
    """The settings hash a model of ``recipe`` with ``overrides`` records (its recipe's ``sha256``)."""
    from gan_stretch.train.recipes import load_recipe, recipe_source

    return recipe_source(load_recipe(ROOT / recipe, list(overrides)))["sha256"]


def trained_settings(model: Path) -> str | None:
    """The settings hash a model file records of the recipe that trained it (None: no model there)."""
    from gan_stretch.errors import GanStretchError
    from gan_stretch.io import checkpoint

    try:
        return checkpoint.load(model)[1].get("recipe", {}).get("sha256")
    except GanStretchError:
        return None


def scores_key(data: str, benchmark: list[str], model: Path | None = None, settings: str | None = None) -> dict:
    """What one benchmark folder's scores are of: the set and the benchmark's arguments, and for a
    trained model its file's hash and the settings hash of the variant it stands for."""
    from gan_stretch.data.cache import file_digest

    key = {"data": str(data), "benchmark": list(benchmark)}
    if model is not None:
        key.update({"model_sha1": file_digest(model), "settings": settings})
    return key


def reusable(folder: Path, key: dict, table: str = "results.csv") -> bool:
    """Whether ``folder`` holds scores (``table``) made of exactly ``key`` (recorded beside them by :func:`score`)."""
    try:
        return (folder / table).is_file() and json.loads((folder / "scored.json").read_text()) == key
    except (OSError, ValueError):
        return False


def score(folder: Path, key: dict, run_benchmark, table: str = "results.csv") -> None:
    """Runs ``run_benchmark()``, which writes ``folder/table``, unless ``folder`` holds scores of
    exactly ``key``; records ``key`` beside the new scores (folder/scored.json)."""
    if reusable(folder, key, table):
        return
    (folder / "scored.json").unlink(missing_ok=True)
    run_benchmark()
    (folder / "scored.json").write_text(json.dumps(key, indent=1) + "\n")


def stale(model: Path, settings: str) -> bool:
    """Whether ``model`` was trained with other settings than ``settings`` (its variant's hash now);
    says so: its scores would stand for a variant that no longer exists."""
    if trained_settings(model) == settings:
        return False
    print(f"not scoring {model}: trained with other settings than its variant now gives; retrain it")
    return True


MIN_UNITS = 5  # fewer paired units than this give no interval (a resample of 1-4 values says nothing)


def bootstrap_ci(diffs: np.ndarray, n: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``diffs`` and its 95% percentile-bootstrap interval (resampling the clips); the
    interval is NaN with fewer than MIN_UNITS values (the classifier's accuracy is one value per
    set and rate)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(diffs) < MIN_UNITS:
        return float(diffs.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), (n, len(diffs)))].mean(axis=1)
    return float(diffs.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def improvement(measure: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per clip, how much better a is than b on ``measure`` (positive = a better), in its units."""
    if BETTER[measure] == "lower":
        return b - a
    if BETTER[measure] == "higher":
        return a - b
    target = 0.5 if measure == "two_sample_accuracy" else 0.0
    return np.abs(b - target) - np.abs(a - target)


def read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return [
            {**r, "rate": float(r["rate"]), **{m: float(r[m]) for m in MEASURES if r.get(m, "") != ""}}
            for r in csv.DictReader(f)
        ]


def variant_seed(method: str) -> tuple[str, int | None]:
    """'gan-s2' -> ('gan', 2); a method without a seed (a classical stretcher) -> (method, None)."""
    found = re.fullmatch(r"(.+)-s(\d+)", method)
    return (found.group(1), int(found.group(2))) if found else (method, None)


def paired(rows: list[dict], a: str, b: str, seeds: list[int], measure: str, rate: float | None) -> np.ndarray:
    """Per clip (set, piece, rate): improvement of variant a over b, each averaged over the seeds
    both were trained with. The classifier's accuracy is one number per method and rate, so its
    units are (set, rate), not clips."""

    def per_clip(variant, use):
        acc: dict = {}
        for r in rows:
            name, seed = variant_seed(r["method"])
            if name == variant and seed in use and (rate is None or r["rate"] == rate) and measure in r:
                key = (r["set"], r["rate"]) if measure == "two_sample_accuracy" else (r["set"], r["piece"], r["rate"])
                acc.setdefault(key, []).append(r[measure])
        return {k: float(np.mean(v)) for k, v in acc.items()}

    trained = lambda v: {variant_seed(r["method"])[1] for r in rows if variant_seed(r["method"])[0] == v}
    common = set(seeds) & trained(a) & trained(b)
    va, vb = per_clip(a, common), per_clip(b, common)
    keys = sorted(set(va) & set(vb))
    return improvement(measure, np.array([va[k] for k in keys]), np.array([vb[k] for k in keys]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/results/adversarial")
    p.add_argument("--runs", default="runs/study")
    p.add_argument("--eval", nargs="+", required=True, help="evaluation corpora (held-out, unseen sound banks)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--adv-weights",
        type=float,
        nargs="*",
        default=[0.3, 3.0],
        help="extra adversarial weights of the sweep (0 and 1 are the variants)",
    )
    p.add_argument(
        "--autoencoder",
        default=None,
        help="a trained autoencoder (default: train recipes/default/autoencoder.yaml once)",
    )
    p.add_argument("--pieces", type=int, default=8)
    p.add_argument("--accelerate-config", default=str(ROOT / "recipes/accelerate/cpu.yaml"))
    p.add_argument("--extra", default="", help="overrides for every run, e.g. 'data=data/train/a,data/train/b'")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="train nothing: score the runs that have finished (others are trained elsewhere)",
    )
    p.add_argument("--score-only", action="store_true", help="only re-read existing scores and write the report")
    p.add_argument("-j", "--jobs", type=int, default=None, help="processes for each benchmark (default: one per core)")
    args = p.parse_args(argv)
    out, runs = Path(args.out), Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    sh = Shell()

    settings: dict[str, str] = {}  # model path -> the settings hash of its variant

    def train(recipe: str, run: str, *overrides: str) -> str:
        model = runs / run / "model.safetensors"
        given = (f"run_dir={runs / run}", "eval_pieces=0", *overrides, *args.extra.split())
        if not args.score_only:
            settings[str(model)] = variant_settings(recipe, *given)
        if not (args.score_only or args.no_train):  # a finished run resumes at its last step and only exports
            sh(train_command(args.accelerate_config, recipe, *given))
        return str(model)

    ae = args.autoencoder or train("recipes/default/autoencoder.yaml", "autoencoder")
    models: dict[str, str] = {}
    for seed in args.seeds:
        for name, recipe in VARIANTS.items():
            models[f"{name}-s{seed}"] = train(recipe, f"{name}-s{seed}", f"autoencoder={ae}", f"seed={seed}")
    for name, recipe in ABLATIONS.items():
        models[f"{name}-s0"] = train(recipe, f"{name}-s0", f"autoencoder={ae}", "seed=0")
    for w in args.adv_weights:
        models[f"gan-adv{w:g}-s0"] = train(
            VARIANTS["gan"],
            f"gan-adv{w:g}-s0",
            f"autoencoder={ae}",
            "seed=0",
            f"adv_weight={w:g}",
            f"fm_weight={2 * w:g}",
            f"spec_adv_weight={w:g}",
            f"spec_fm_weight={2 * w:g}",
        )
    rows = []
    for data in args.eval:
        # one benchmark per model (and one for the classical references), so scores accumulate
        # as runs finish and a rerun scores only what is new
        for name, cmd in [("classical", ["--methods", "wsola", "rubberband-r3"])] + [
            (name, ["--model", f"{name}={path}", "--methods"]) for name, path in models.items()
        ]:
            res = out / "scores" / Path(data).name / name
            if args.score_only:  # the scores on disk, as they are
                if (res / "results.csv").is_file():
                    rows += [{**r, "set": Path(data).name} for r in read_rows(res / "results.csv")]
                continue
            benchmark = ["--pieces", str(args.pieces), *cmd]
            model = None if name == "classical" else Path(models[name])
            if model is not None and not finished(model.parent):
                continue
            if model is not None and stale(model, settings[str(model)]):
                continue
            command = [sys.executable, "eval/benchmark.py", "--data", data, "--out", str(res), *benchmark]
            command += ["--jobs", str(args.jobs)] if args.jobs else []
            score(res, scores_key(data, benchmark, model, settings.get(str(model))), partial(sh, command))
            rows += [{**r, "set": Path(data).name} for r in read_rows(res / "results.csv")]
    report(rows, args, out)
    sh.write(out / "commands.txt")
    return 0


def report(rows: list[dict], args, out: Path) -> None:
    rates = sorted({r["rate"] for r in rows})
    lines = [
        f"# The adversarial study ({', '.join(Path(d).name for d in args.eval)}; seeds "
        f"{', '.join(map(str, args.seeds))})",
        "",
        "Regenerate (trains every run that is missing, scores every model not yet scored, writes this "
        "page): `python eval/study.py "
        + " ".join(shlex.quote(a) for a in sys.argv[1:] if a not in ("--score-only", "--no-train"))
        + "`",
        "",
        "Per-clip paired improvement of the first variant over the second (each clip's measure averaged over "
        "the seeds first; positive = the first is better: lower log-mel, higher ViSQOL, attack/smear/"
        "over-smoothing closer to 0, classifier accuracy closer to 0.5), mean and bootstrap 95% interval "
        "over clips. An interval that excludes 0 is a difference the data shows (in bold). The classifier's "
        "accuracy is one value per set and rate, so its units are (set, rate) pairs: no interval per rate.",
        "",
    ]
    csv_rows = []
    for a, b in PAIRS:
        lines += [
            f"## {a} vs {b}",
            "",
            "| measure | " + " | ".join(f"{r:g}" for r in rates) + " | all rates |",
            "|---|" + "---|" * (len(rates) + 1),
        ]
        for m in MEASURES:
            cells = []
            for rate in [*rates, None]:
                diffs = paired(rows, a, b, args.seeds, m, rate)
                mean, lo, hi = bootstrap_ci(diffs)
                csv_rows.append(
                    {
                        "a": a,
                        "b": b,
                        "measure": m,
                        "rate": "all" if rate is None else rate,
                        "mean": mean,
                        "lo": lo,
                        "hi": hi,
                    }
                )
                mark = "**" if np.isfinite(lo) and (lo > 0 or hi < 0) else ""
                if not np.isfinite(mean):
                    cells.append("n/a")
                elif not np.isfinite(lo):
                    cells.append(f"{mean:+.3f} (no interval: {int(np.isfinite(diffs).sum())} values)")
                else:
                    cells.append(f"{mark}{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    # means per variant and the sweep
    lines += [
        "## Means per variant (over sets, pieces, rates and seeds)",
        "",
        "| variant | " + " | ".join(MEASURES) + " |",
        "|---|" + "---|" * len(MEASURES),
    ]
    variants = list(dict.fromkeys(variant_seed(r["method"])[0] for r in rows))
    for v in variants:
        mine = [r for r in rows if variant_seed(r["method"])[0] == v]
        vals = [np.nanmean([r.get(m, np.nan) for r in mine]) for m in MEASURES]
        lines.append(f"| {v} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
    lines += [
        "",
        "## Means per run (the spread between seeds)",
        "",
        "| run | " + " | ".join(MEASURES) + " |",
        "|---|" + "---|" * len(MEASURES),
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        if variant_seed(method)[1] is None:
            continue
        mine = [r for r in rows if r["method"] == method]
        vals = [np.nanmean([r.get(m, np.nan) for r in mine]) for m in MEASURES]
        lines.append(f"| {method} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
    lines += ["", "## Per rate, means over sets, pieces and seeds", ""]
    rates = sorted({r["rate"] for r in rows})
    for m in MEASURES:
        lines += [
            f"{m} ({BETTER[m]} is better)",
            "",
            "| variant | " + " | ".join(f"{x:g}" for x in rates) + " |",
            "|---|" + "---|" * len(rates),
        ]
        for v in variants:
            vals = [
                np.nanmean(
                    [r.get(m, np.nan) for r in rows if variant_seed(r["method"])[0] == v and r["rate"] == rate]
                    or [np.nan]
                )
                for rate in rates
            ]
            lines.append(f"| {v} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
        lines.append("")
    (out / "study.md").write_text("\n".join(lines) + "\n")
    with open(out / "paired.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(csv_rows[0]))
        w.writeheader()
        w.writerows(csv_rows)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
