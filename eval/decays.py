"""Decays against the truth and on recordings: does the default move a piece's level the way a
performance at the new tempo does, and what does that cost where no truth exists?

    python eval/decays.py --out docs/results/decays [--pieces 4] [--recordings data/recordings]

On true-tempo evaluation sets, each held-out piece at rate 1 is stretched to every rate by the
packaged default with its decays (``default``) and without (``no-decays``, ``Stretcher(decays=False)``)
and scored against the true render: log-mel distance, the output's level change against the input
(mean over bands, :func:`gan_stretch.measures.naturalness.band_level_change_db`) beside the true render's own
level change, and the round trip (stretched by r, then by 1/r, against the input). Pieces rendered
with reverb (the item's ``effects``: fluidsynth's reverb at room sizes 0.4 to 0.9, or TiMidity's) and without are
reported apart. On a recordings corpus (``gan-stretch data recordings``; its held-out excerpts, one
per recording) there is no truth: level change per band and round trip, by style.

Writes results.csv (one row per piece, method and rate) and table.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval.results import read_rows
from eval.stats import bootstrap_ci, improvement
from gan_stretch.data.manifest import Corpus
from gan_stretch.dsp import decays
from gan_stretch.measures import metrics
from gan_stretch.measures import naturalness as nat

SETS = (
    "classical-opl3-22050",
    "classical-musescore-22050",
    "ensemble-musescore-22050",
    "groove-opl3-22050",
    "groove-freepats-22050",
    "groove-freepats-44100",
    "groove-musescore-44100",
)
RATES = (0.5, 0.75, 1.5, 2.0)
_WORKER: dict = {}


def fit_line(levels):
    """The fit before R^2 weighting: the plain slope, clipped to a fall."""
    return np.clip(decays.line_fit(levels)[0], -decays.MAX_SLOPE_DB, 0.0)


def fit_r2_squared(levels):
    """Slope times R^4: stricter on lines that explain less."""
    slope, r2 = decays.line_fit(levels)
    return np.clip(slope * r2**2, -decays.MAX_SLOPE_DB, 0.0)


def fit_tail(levels):
    """The plain slope of the gap's last two thirds (a decay to a sustain follows the sustain)."""
    y = np.asarray(levels, dtype=np.float64)
    return fit_line(y[len(y) // 3 :] if len(y) >= 4 else y)


def fit_significant(levels):
    """The plain slope where it falls more than twice its standard error, else none: with n - 2
    degrees of freedom, t^2 = (n - 2) R^2 / (1 - R^2) > 4."""
    slope, r2 = decays.line_fit(levels)
    significant = (slope < 0) & (max(len(levels) - 2, 1) * r2 > 4 * (1 - r2))
    return np.clip(np.where(significant, slope, 0.0), -decays.MAX_SLOPE_DB, 0.0)


def fit_head(levels):
    """R^2-weighted, and weighted again by how much of the fall is in the gap's first half (a
    note's own decay starts at its attack; a held note that is released late does not)."""
    slope, r2 = decays.line_fit(levels)
    w = r2
    if len(levels) >= 6:
        head = decays.line_fit(np.asarray(levels)[: len(levels) // 2 + 1])[0]
        w = w * np.clip(np.where(slope < 0, head / np.minimum(slope, -1e-9), 0), 0, 1)
    return np.clip(slope * w, -decays.MAX_SLOPE_DB, 0.0)


# other decay fits, scored in place of gan_stretch.dsp.decays.decay_slope (``--fits``)
FITS = {
    "line": fit_line,
    "r2-squared": fit_r2_squared,
    "tail": fit_tail,
    "significant": fit_significant,
    "head": fit_head,
}


class Fitted:
    """A Stretcher whose decays use another fit (:data:`FITS`) while it stretches."""

    def __init__(self, fit):
        from gan_stretch import Stretcher

        self.fit, self.st = fit, Stretcher(device="cpu")

    def stretch(self, x, sr, rate):
        shipped = decays.decay_slope
        decays.decay_slope = self.fit
        try:
            return self.st.stretch(x, sr, rate)
        finally:
            decays.decay_slope = shipped


def init(fits=()) -> None:
    from gan_stretch import Stretcher

    _WORKER["models"] = {"default": Stretcher(device="cpu"), "no-decays": Stretcher(device="cpu", decays=False)}
    _WORKER["models"] |= {f"fit-{name}": Fitted(FITS[name]) for name in fits}


def level_db(bands: list[float]) -> float:
    """Mean level change over the bands below 11 kHz (the bands every sample rate here has) of
    :func:`gan_stretch.measures.naturalness.band_level_change_db`."""
    return float(np.nanmean(bands[:4]))


def score(job: tuple) -> list[dict]:
    """One piece (a true-tempo item, or a recording when ``truth`` is False) at every rate and method."""
    root, item_id, rates, truth = job
    corpus = Corpus(root)
    item = next(it for it in corpus.items if it.id == item_id)
    sr = corpus.manifest["sample_rate"]
    x = corpus.load(item, 1.0, mono=False) if not truth else corpus.load(item, 1.0)
    rows = []
    for rate in rates:
        if truth:
            t = corpus.load(item, rate)
            truth_level = level_db(nat.band_level_change_db(t, x, sr))
        for name, st in _WORKER["models"].items():
            y = st.stretch(x, sr, rate)
            back = st.stretch(y, sr, 1 / rate)
            bands = nat.band_level_change_db(y, x, sr)
            row = {
                "set": Path(root).name,
                "piece": item.id,
                "style": item.extra.get("style", ""),
                "reverb": "reverb_send" in item.extra.get("effects", {}),
                "method": name,
                "rate": rate,
                "level_db": level_db(bands),
                "round_trip_db": nat.round_trip_db(x, back, sr),
            }
            if truth:
                row |= {"logmel_db": metrics.log_mel_distance(y, t, sr), "truth_level_db": truth_level}
            else:
                row |= {f"band_{i}_db": v for i, v in enumerate(bands)}
            rows.append(row)
    return rows


def mean(rows, key) -> float:
    vals = [r[key] for r in rows if r.get(key) not in (None, "") and np.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(default rows, no-decays rows) of ``rows``."""
    return [r for r in rows if r["method"] == "default"], [r for r in rows if r["method"] == "no-decays"]


def levels(d: list[dict], n: list[dict]) -> str:
    """The cells both truth tables share: the truth's, the default's (``d``) and no-decays' (``n``)
    level change, then both log-mel distances."""
    return (
        f"{mean(d, 'truth_level_db'):+.2f} | {mean(d, 'level_db'):+.2f} | {mean(n, 'level_db'):+.2f} | "
        f"{mean(d, 'logmel_db'):.2f} | {mean(n, 'logmel_db'):.2f}"
    )


def truth_sections(truth_rows: list[dict], rates) -> list[str]:
    """The true-tempo sections: per set and rate, then renders with and without reverb."""
    out = [
        "## True-tempo sets: log-mel to the truth (dB) and level change against the input (dB)",
        "",
        "`truth` is the true render's own level change: what a performance at the new tempo does.",
        "",
        "| set | rate | truth level | default level | no-decays level | default log-mel | no-decays log-mel |"
        " default round trip | no-decays round trip |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in dict.fromkeys(r["set"] for r in truth_rows):
        for rate in rates:
            d, n = split([r for r in truth_rows if r["set"] == s and r["rate"] == rate])
            out.append(
                f"| {s} | {rate:g} | {levels(d, n)} | {mean(d, 'round_trip_db'):.2f} | {mean(n, 'round_trip_db'):.2f} |"
            )
    out += [
        "",
        "## Renders with and without reverb (all sets): means over pieces",
        "",
        "| reverb | pieces | rate | truth level | default level | no-decays level | default log-mel | no-decays log-mel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rev in (False, True):
        for rate in rates:
            d, n = split([r for r in truth_rows if r["reverb"] == rev and r["rate"] == rate])
            out.append(f"| {'on' if rev else 'off'} | {len(d)} | {rate:g} | {levels(d, n)} |")
    return out


def methods_section(rows: list[dict], truth_rows: list[dict], rates) -> list[str]:
    """Every method (the default, no-decays and the other fits) in one table: log-mel per set,
    level change per rate, and on recordings level change and round trip per rate."""
    sets = list(dict.fromkeys(r["set"] for r in truth_rows))
    truth_level = lambda x: mean(
        [r for r in truth_rows if r["rate"] == x and r["method"] == "default"], "truth_level_db"
    )
    out = [
        "",
        "## Every method: true-tempo sets (log-mel, mean over rates; level change per rate) and recordings",
        "",
        "| method | "
        + " | ".join(sets)
        + " | "
        + " | ".join(f"level {r:g} (truth {truth_level(r):+.2f})" for r in rates)
        + " | "
        + " | ".join(f"recordings {r:g}: level / round trip" for r in rates)
        + " |",
        "|---" * (1 + len({r["set"] for r in truth_rows}) + 2 * len(rates)) + "|",
    ]
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = [
            f"{mean([r for r in truth_rows if r['set'] == s and r['method'] == m], 'logmel_db'):.3f}" for s in sets
        ]
        cells += [
            f"{mean([r for r in truth_rows if r['rate'] == x and r['method'] == m], 'level_db'):+.2f}" for x in rates
        ]
        rec_m = [r for r in rows if "logmel_db" not in r and r["method"] == m]
        cells += [
            f"{mean([r for r in rec_m if r['rate'] == x], 'level_db'):+.2f} / {mean([r for r in rec_m if r['rate'] == x], 'round_trip_db'):.2f}"
            for x in rates
        ]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out


def recordings_section(rec: list[dict], rates) -> list[str]:
    """Recordings (no truth): the default's and no-decays' level change and round trip, by style."""
    out = [
        "",
        "## Recordings (no truth): level change below 11 kHz and round trip, by style",
        "",
        "| style | recordings | rate | default level | no-decays level | default round trip | no-decays round trip |",
        "|---|---|---|---|---|---|---|",
    ]
    for style in [*dict.fromkeys(r["style"] for r in rec), "all"]:
        for rate in rates:
            d, n = split([r for r in rec if (style == "all" or r["style"] == style) and r["rate"] == rate])
            out.append(
                f"| {style} | {len(d)} | {rate:g} | {mean(d, 'level_db'):+.2f} | {mean(n, 'level_db'):+.2f} | "
                f"{mean(d, 'round_trip_db'):.2f} | {mean(n, 'round_trip_db'):.2f} |"
            )
    return out


def table(rows: list[dict], rates, args) -> str:
    out = [
        f"# Decays: the default with and without them ({' / '.join(map(str, rates))})",
        "",
        f"Command: `python eval/decays.py {args.command}`",
        "",
    ]
    truth_rows = [r for r in rows if "logmel_db" in r]
    out += truth_sections(truth_rows, rates)
    if len(dict.fromkeys(r["method"] for r in rows)) > 2:
        out += methods_section(rows, truth_rows, rates)
    rec = [r for r in rows if "logmel_db" not in r]
    if rec:
        out += recordings_section(rec, rates)
    return "\n".join(out) + "\n"


def paired(before: Path, after: Path, method: str = "default", seed: int = 0) -> str:
    """Two eval/benchmark.py runs of the same pieces and rates (one folder per set, each with
    results.csv; ``before`` may hold before-results.csv beside them instead): per set, the mean
    log-mel and ViSQOL of ``method`` in each and the paired difference with its 95 % bootstrap
    interval over clips."""
    rng = np.random.default_rng(seed)
    out = [
        "| set | log-mel: before -> now (gain) | 95 % interval | ViSQOL: before -> now | 95 % interval |",
        "|---|---|---|---|---|",
    ]
    for folder in sorted(p for p in Path(after).iterdir() if (p / "results.csv").exists()):
        b = Path(before) / folder.name / "results.csv"
        b = b if b.exists() else folder / "before-results.csv"

        def clips(path):
            return {(r["piece"], r["rate"]): r for r in read_rows(path) if r["method"] == method}

        x, y = clips(b), clips(folder / "results.csv")
        keys = sorted(x)
        if sorted(y) != keys:
            raise SystemExit(f"error: {folder.name}: the two runs scored different clips")
        cells = []
        for metric in ("logmel_db", "visqol"):
            a, now = (np.array([c[k][metric] for k in keys]) for c in (x, y))
            d = improvement(metric, now, a)
            _, lo, hi = bootstrap_ci(d, n=2000, rng=rng)
            cells.append(f"{a.mean():.3f} -> {now.mean():.3f} ({d.mean():+.3f}) | [{lo:+.3f}, {hi:+.3f}]")
        out.append(f"| {folder.name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> None:
    from gan_stretch.runtime import parallel

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="results folder")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="instead: the paired table of two eval/benchmark.py runs (one folder per set)",
    )
    p.add_argument("--eval", default="data/eval", help="folder of the evaluation sets (eval/make-evalsets.sh)")
    p.add_argument("--sets", nargs="+", default=list(SETS))
    p.add_argument("--pieces", type=int, default=4, help="held-out pieces per set")
    p.add_argument("--recordings", default=None, help="a recordings corpus (gan-stretch data recordings)")
    p.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    p.add_argument(
        "--fits", nargs="*", default=[], choices=sorted(FITS), help="other decay fits to score beside the shipped one"
    )
    p.add_argument("-j", "--jobs", type=int, default=1)
    args = p.parse_args(argv)
    if args.compare:
        print(paired(Path(args.compare[0]), Path(args.compare[1])), end="")
        return
    if not args.out:
        p.error("--out is required")
    args.command = " ".join(argv if argv is not None else __import__("sys").argv[1:])
    jobs = []
    for s in args.sets:
        corpus = Corpus(Path(args.eval) / s)
        jobs += [(str(corpus.root), it.id, tuple(args.rates), True) for it in corpus.split("heldout")[: args.pieces]]
    if args.recordings:
        corpus = Corpus(args.recordings)
        one = {}
        for it in corpus.split("heldout"):  # each recording's first excerpt
            one.setdefault(corpus.recording(it), it)
        jobs += [(str(corpus.root), it.id, tuple(args.rates), False) for it in one.values()]
    rows = []
    for _, result, error in parallel.imap(
        score, jobs, args.jobs, desc="decays", unit="piece", init=init, initargs=(tuple(args.fits),)
    ):
        if error is not None:
            raise SystemExit(f"error: {error}")
        rows += result
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    (out / "table.md").write_text(table(rows, args.rates, args))
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
