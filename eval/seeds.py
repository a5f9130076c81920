"""Two model variants, several seeds each, compared per evaluation set and rate.

    python eval/seeds.py --results DIR/<set> ... --a dd --b old [--measures logmel_db] [--out FILE.md]

Each folder is one eval/benchmark.py run on one set, scoring models named ``<variant>-s<seed>``
(``--model dd-s0=... --model dd-s1=...``). Per set, per rate and over all rates: each clip's
measure averaged over the seeds of each variant, the paired difference (positive = ``--a`` better)
and its 95 % bootstrap interval over clips (eval/study.py's pairing and bootstrap), and each seed's
mean, so the spread between seeds is seen beside the difference. Variants named without a seed
(one model under two pipeline settings, ``--model hold=PATH@refine_attacks=0``) are paired the same way.
One model against several seeds (``--b dd-s0``, the model every seed of ``--a`` was fine-tuned from):
a ``--b`` that names one model scored in the folders is paired with each seed of ``--a``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.measures import BETTER
from eval.results import paired, read_rows, variant_seed
from eval.stats import bootstrap_ci


def compare(sets: dict[str, list[dict]], a: str, b: str, measure: str) -> list[str]:
    """Markdown lines: one table of ``measure`` for ``a`` against ``b`` over every set."""
    rates = sorted({r["rate"] for rows in sets.values() for r in rows})
    lines = [
        f"## {measure} ({BETTER[measure]} is better): {a} minus {b}, positive = {a} better",
        "",
        "| set | " + " | ".join(f"{r:g}" for r in rates) + " | all rates | seeds' means |",
        "|---|" + "---|" * (len(rates) + 2),
    ]
    for name, rows in sets.items():
        for r in rows:
            r["set"] = name
        seeds = sorted({s for r in rows for v, s in [variant_seed(r["method"])] if v in (a, b) and s is not None})
        seeds = seeds or [None]  # one model each, named without -s<seed> (pipeline settings of one model)
        cells = []
        for rate in rates + [None]:
            mean, lo, hi = bootstrap_ci(paired(rows, a, b, seeds, measure, rate))
            cells.append("-" if not np.isfinite(mean) else f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        spread = []
        for variant in (a, b):
            per_seed = {}
            for r in rows:
                v, s = variant_seed(r["method"])
                if v == variant and measure in r and np.isfinite(r[measure]):
                    per_seed.setdefault(s, []).append(r[measure])
            spread.append(f"{variant} " + " / ".join(f"{np.mean(per_seed[s]):.3f}" for s in sorted(per_seed)))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'; '.join(spread)} |")
    return lines + [""]


def one_model_for_every_seed(rows: list[dict], a: str, b: str) -> list[dict]:
    """``rows`` with the rows of model ``b`` (a method name such as ``dd-s0``) repeated as
    ``<b>-s<seed>`` for every seed of variant ``a``, so each seed is paired with that one model;
    unchanged where ``b`` is a variant (no row's method is ``b`` itself)."""
    seeds = sorted({s for r in rows for v, s in [variant_seed(r["method"])] if v == a and s is not None})
    fixed = [r for r in rows if r["method"] == b]
    if not fixed or not seeds:
        return rows
    return rows + [{**r, "method": f"{b}-s{seed}"} for seed in seeds for r in fixed]


def page(sets: dict[str, list[dict]], pairs: list[tuple[str, str]], measures: list[str]) -> str:
    """The markdown page: for each pair (a, b), one table per measure of ``a`` against ``b`` over
    every set ({set name: rows}; a ``b`` naming one model is paired with every seed of ``a``)."""
    pages = []
    for a, b in pairs:
        mine = {name: one_model_for_every_seed([dict(r) for r in rows], a, b) for name, rows in sets.items()}
        lines = [f"# {a} against {b}, {len(mine)} evaluation sets", ""]
        lines += ["Per clip, each variant's measure averaged over its seeds; 95 % bootstrap intervals over clips.", ""]
        for m in measures:
            lines += compare(mine, a, b, m)
        pages.append("\n".join(lines))
    return "\n\n".join(pages)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", nargs="+", required=True, help="benchmark folders, one per evaluation set")
    p.add_argument("--a", required=True, help="variant name (models named <variant>-s<seed>)")
    p.add_argument("--b", required=True)
    p.add_argument("--measures", nargs="+", default=["logmel_db"], choices=sorted(BETTER))
    p.add_argument("--out", default=None, help="markdown file (default: print)")
    args = p.parse_args(argv)
    sets = {Path(d).name: read_rows(Path(d) / "results.csv") for d in args.results}
    text = page(sets, [(args.a, args.b)], args.measures)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
