"""One report from several benchmark folders (one per evaluation set): every method on every set,
both axes, and per-rate tables of chosen methods.

    python eval/report.py --results docs/results/default/* --out docs/results/default.md \
        --per-rate default wsola rubberband-r3 [--model default]

For each measure a table of means over pieces and rates (methods x sets, and the mean over sets);
then, per set, the per-rate tables of the ``--per-rate`` methods; then the targets of the model
named by ``--model``: its log-mel margin to the best classical stretcher at each rate and set,
its ViSQOL against Rubber Band R3's, and its attack against the true render.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.measures import COMPARED, MEASURES
from eval.results import read_rows

CLASSICAL = ("wsola", "rubberband-r2", "rubberband-r3", "pv", "hptsm")


def read(folder: Path) -> list[dict]:
    """The rows of a benchmark folder's results.csv, rate and measures as numbers (eval/results.py)."""
    return read_rows(folder / "results.csv")


def mean(rows: list[dict], measure: str, **where) -> float:
    """Mean of the finite values of ``measure`` over the rows matching ``where`` (NaN where a
    measure does not apply, e.g. attacks without onsets, is left out)."""
    vals = [r[measure] for r in rows if measure in r and all(r[k] == v for k, v in where.items())]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def finite_mean(values) -> float:
    """Mean of the finite values, NaN when there are none (a measure no set has)."""
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def cell(value: float, fmt: str) -> str:
    return fmt.format(value) if np.isfinite(value) else "-"


def report(sets: dict[str, list[dict]], per_rate: list[str], model: str | None) -> str:
    methods = list(dict.fromkeys(r["method"] for rows in sets.values() for r in rows))
    names = list(sets)
    lines = [f"# {len(names)} evaluation sets: {', '.join(names)}", ""]
    lines += ["Means over the held-out pieces and the five rates of each set.", ""]
    for m in COMPARED:
        title, how, fmt = MEASURES[m].title, MEASURES[m].how, MEASURES[m].fmt
        if not any(m in r for rows in sets.values() for r in rows):
            continue
        lines += [f"## {title} ({how})", "", "| method | " + " | ".join(names) + " | mean |"]
        lines.append("|---|" + "---|" * (len(names) + 1))
        for method in methods:
            vals = [mean(sets[s], m, method=method) for s in names]
            lines.append(
                f"| {method} | " + " | ".join(cell(v, fmt) for v in vals) + f" | {cell(finite_mean(vals), fmt)} |"
            )
        lines.append("")
    for s in names:
        rates = sorted({r["rate"] for r in sets[s]})
        lines += [f"## {s}, per rate", ""]
        for m in ("logmel_db", "visqol", "attack_db", "smear_db", "attack_high_db", "smear_high_db"):
            if np.isnan(mean(sets[s], m)):  # not measured on this set (the high band: 44.1 kHz sets only)
                continue
            title, how, fmt = MEASURES[m].title, MEASURES[m].how, MEASURES[m].fmt
            lines += [f"{title} ({how})", "", "| method | " + " | ".join(f"{r:g}" for r in rates) + " | mean |"]
            lines.append("|---|" + "---|" * (len(rates) + 1))
            for method in per_rate:
                vals = [mean(sets[s], m, method=method, rate=r) for r in rates]
                lines.append(
                    f"| {method} | " + " | ".join(cell(v, fmt) for v in vals) + f" | {cell(finite_mean(vals), fmt)} |"
                )
            lines.append("")
    if model:
        lines += targets(sets, model)
    return "\n".join(lines) + "\n"


def targets(sets: dict[str, list[dict]], model: str) -> list[str]:
    """Per set and rate: the model's log-mel margin below the best classical stretcher (positive =
    ahead), its ViSQOL minus Rubber Band R3's, and its attack."""
    lines = [
        f"## {model} against the targets, per set and rate",
        "",
        "log-mel margin = the best classical stretcher's log-mel minus the model's (positive: the model is "
        "ahead; target at least +0.3 dB); ViSQOL minus Rubber Band R3's (target at least 0); attack (target "
        "within 1 dB of 0).",
        "",
    ]
    for s, rows in sets.items():
        rates = sorted({r["rate"] for r in rows})
        present = [c for c in CLASSICAL if any(r["method"] == c for r in rows)]
        lines += [
            f"{s} (classical: {', '.join(present)})",
            "",
            "| | " + " | ".join(f"{r:g}" for r in rates) + " | mean |",
        ]
        lines.append("|---|" + "---|" * (len(rates) + 1))
        margin, visqol, attack = [], [], []
        for r in [*rates, None]:
            where = {} if r is None else {"rate": r}
            best = min(mean(rows, "logmel_db", method=c, **where) for c in present) if present else float("nan")
            margin.append(best - mean(rows, "logmel_db", method=model, **where))
            visqol.append(
                mean(rows, "visqol", method=model, **where) - mean(rows, "visqol", method="rubberband-r3", **where)
            )
            attack.append(mean(rows, "attack_db", method=model, **where))
        lines.append("| log-mel margin, dB | " + " | ".join(cell(v, "{:+.2f}") for v in margin) + " |")
        lines.append("| ViSQOL - R3 | " + " | ".join(cell(v, "{:+.3f}") for v in visqol) + " |")
        lines.append("| attack, dB | " + " | ".join(cell(v, "{:+.2f}") for v in attack) + " |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", nargs="+", required=True, help="benchmark folders (each with results.csv)")
    p.add_argument("--out", required=True)
    p.add_argument("--per-rate", nargs="*", default=["default", "wsola", "rubberband-r3"])
    p.add_argument("--model", default=None, help="the model whose targets are checked")
    args = p.parse_args(argv)
    folders = [Path(f) for f in args.results]
    missing = [str(f) for f in folders if not (f / "results.csv").is_file()]
    if missing:
        print(f"report: no results.csv in {', '.join(missing)}", file=sys.stderr)
        return 2
    text = report({f.name: read(f) for f in folders}, args.per_rate, args.model)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
