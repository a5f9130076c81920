"""The adversarial study's page: does the discriminator earn its place?

    python -m eval.run recipes/grids/adversarial.yaml [--dry-run] [--no-train] [--report-only]
    python eval/study.py [--dry-run] ...        (the same: this grid through eval/run.py)

The grid (recipes/grids/adversarial.yaml) declares the variants (mapper, gan-no-adv and gan on
every seed; on seed 0 the latent discriminator alone and a sweep of the adversarial weight w:
every adversarial and feature-matching weight scaled by w, the supervised terms fixed; w = 0 is
gan-no-adv, w = 1 is gan), the evaluation sets (held-out pieces, soundfonts never trained on)
and the pairs compared. eval/run.py trains and scores them; :func:`write_study` writes
OUT/study.md and OUT/paired.csv: per-clip paired differences (each clip's measure averaged over
the seeds first) with bootstrap 95% confidence intervals (resampling clips), per rate and measure.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.measures import BETTER, COMPARED
from eval.results import paired, variant_seed, write_rows
from eval.stats import bootstrap_ci, cell

GRID = "recipes/grids/adversarial.yaml"


def paired_tables(rows: list[dict], seeds: list[int], pairs: list, measures: list[str]) -> tuple[list[str], list[dict]]:
    """Per pair (a, b): a table of a's per-clip improvement over b (mean and bootstrap interval) per
    measure and rate; and the same as rows of paired.csv."""
    rates = sorted({r["rate"] for r in rows})
    lines, csv_rows = [], []
    for a, b in pairs:
        lines += [
            f"## {a} vs {b}",
            "",
            "| measure | " + " | ".join(f"{r:g}" for r in rates) + " | all rates |",
            "|---|" + "---|" * (len(rates) + 1),
        ]
        for m in measures:
            cells = []
            for rate in [*rates, None]:
                diffs = paired(rows, a, b, seeds, m, rate)
                mean, lo, hi = bootstrap_ci(diffs)
                where = {"a": a, "b": b, "measure": m, "rate": "all" if rate is None else rate}
                csv_rows.append({**where, "mean": mean, "lo": lo, "hi": hi})
                cells.append(cell(mean, lo, hi, int(np.isfinite(diffs).sum())))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines, csv_rows


def means(rows: list[dict], measures: list[str]) -> list[str]:
    """Means per variant and per run (the spread between seeds), then per rate, over sets and pieces."""
    variants = list(dict.fromkeys(variant_seed(r["method"])[0] for r in rows))
    runs = [m for m in dict.fromkeys(r["method"] for r in rows) if variant_seed(m)[1] is not None]
    lines = []
    for title, column, names, of in (
        (
            "Means per variant (over sets, pieces, rates and seeds)",
            "variant",
            variants,
            lambda r: variant_seed(r["method"])[0],
        ),
        ("Means per run (the spread between seeds)", "run", runs, lambda r: r["method"]),
    ):
        lines += [f"## {title}", "", f"| {column} | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
        for name in names:
            mine = [r for r in rows if of(r) == name]
            vals = [np.nanmean([r.get(m, np.nan) for r in mine]) for m in measures]
            lines.append(f"| {name} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
        lines.append("")
    lines += ["## Per rate, means over sets, pieces and seeds", ""]
    rates = sorted({r["rate"] for r in rows})
    for m in measures:
        lines += [
            f"{m} ({BETTER[m]} is better)",
            "",
            "| variant | " + " | ".join(f"{x:g}" for x in rates) + " |",
            "|---|" + "---|" * len(rates),
        ]
        for v in variants:
            mine = [r for r in rows if variant_seed(r["method"])[0] == v]
            vals = [np.nanmean([r.get(m, np.nan) for r in mine if r["rate"] == rate] or [np.nan]) for rate in rates]
            lines.append(f"| {v} | " + " | ".join(f"{x:.3f}" for x in vals) + " |")
        lines.append("")
    return lines


def write_study(out: Path, sets: dict[str, list[dict]], seeds: list[int], pairs: list, command: str) -> Path:
    """OUT/study.md and OUT/paired.csv from the scores of every set ({set name: rows, each with its ``set``})."""
    rows = [r for rs in sets.values() for r in rs]
    measures = [m for m in COMPARED if any(m in r for r in rows)]  # those the scores have
    lines = [
        f"# The adversarial study ({', '.join(sets)}; seeds {', '.join(map(str, seeds))})",
        "",
        "Regenerate (trains every run that is missing, scores every model not yet scored, writes this "
        f"page): `{command}`",
        "",
        "Per-clip paired improvement of the first variant over the second (each clip's measure averaged over "
        "the seeds first; positive = the first is better: lower log-mel, higher ViSQOL, attack/smear/"
        "over-smoothing closer to 0, classifier accuracy closer to 0.5), mean and bootstrap 95% interval "
        "over clips. An interval that excludes 0 is a difference the data shows (in bold). The classifier's "
        "accuracy is one value per set and rate, so its units are (set, rate) pairs: no interval per rate.",
        "",
    ]
    tables, csv_rows = paired_tables(rows, seeds, pairs, measures)
    lines += tables + means(rows, measures)
    (out / "study.md").write_text("\n".join(lines) + "\n")
    write_rows(out / "paired.csv", csv_rows)
    print("\n".join(lines))
    return out / "study.md"


def main(argv=None) -> int:
    """The grid of this study through eval/run.py (its options: --dry-run, --no-train, --report-only, -j)."""
    from eval import run

    return run.main([str(Path(__file__).resolve().parents[1] / GRID), *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
