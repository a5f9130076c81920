"""Score pitch shifters against the truth: the same MIDI performance rendered transposed.

    python eval/pitch.py --data data/eval/classical-opl3-22050 data/eval/groove-freepats-22050 \
        --out docs/results/pitch [--semitones -12 -5 -2 2 5 12] [--methods gan librosa rubberband]

For each item of each evaluation set (held-out pieces, sound banks never used in training), the
item's MIDI performance is rebuilt from its manifest entry (family, seed, piece, program, effects)
and rendered again with every pitched note moved by n semitones, through the same synthesizer,
sound bank, effects and gain: what the instruments really sound like n semitones away. The rate-1
render is rebuilt too and compared with the set's file on disk (``rebuild_error``): the transposed
renders are only a truth if the untransposed one reproduces the set. Drums have no such truth (a
shifter moves them, a transposed performance keeps its kit), so items with drums (grooves) are
scored without them by default: the input is the rebuilt render less its drum channel, the truth
too (``--keep-drums`` keeps them in both).

Each method shifts the input by n semitones (the set's rate-1 file, or for grooves the rebuilt
render without drums); every output is scored against the transposed render on both axes, as
eval/benchmark.py scores a stretch: log-mel distance (dB, lower is better) and ViSQOL (MOS-LQO,
higher is better), and the pitch error (cents between the output's and the truth's long-term
spectra, 0 is right).

Methods
  gan         gan_stretch's Stretcher.shift with the packaged default model (a stretch, then soxr)
  librosa     librosa.effects.pitch_shift (its phase vocoder, then soxr)
  rubberband  the rubberband command, -p n (its default engine, R2)
  rubberband-r3   the same with -3 (the R3 engine)
  unshifted   the input as it is (how far the truth is from doing nothing)

Writes results.csv (one row per set, item, shift and method), table.md and config.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import soundfile as sf

from eval.results import write_rows
from gan_stretch.data.manifest import Corpus
from gan_stretch.measures import metrics
from gan_stretch.runtime import parallel

METHODS = ("gan", "librosa", "rubberband", "rubberband-r3", "unshifted")
SEMITONES = (-12, -5, -2, 2, 5, 12)
MEASURES = ("logmel_db", "visqol", "pitch_cents")
HOW = {
    "logmel_db": "log-mel distance to the transposed render, dB, lower is better",
    "visqol": "ViSQOL MOS-LQO against the transposed render, higher is better",
    "pitch_cents": "pitch of the output against the transposed render, cents, 0 is right",
}


def rebuild(corpus: Corpus, entry: dict, semitones: int, drums: bool = True) -> tuple[np.ndarray, int]:
    """An item's rate-1 performance, transposed by ``semitones`` (``drums=False``: without its drum
    channel), rendered as the set rendered it (before the set's gain) -> (mono float32 [n], notes
    left out of MIDI's range)."""
    from gan_stretch.data.items import Job, _make
    from gan_stretch.data.render import CHORUS_SEND, REVERB_SEND, find_soundfont, perform, render, transpose

    seconds, sr = float(corpus.manifest["seconds"]), int(corpus.manifest["sample_rate"])
    source = entry["source"]
    piece = source.removeprefix("music21:") if source.startswith("music21:") else ""
    job = Job("", entry["id"], source, int(entry["seed"]), entry["family"], piece, seconds, entry.get("program"))
    midi, program, _ = _make(job)
    controls = {}
    if entry["reverb"]:
        controls[REVERB_SEND] = entry["effects"]["reverb_send"]
    if entry["chorus"]:
        controls[CHORUS_SEND] = entry["effects"]["chorus_send"]
    perf, dropped = transpose(perform(midi, program, seconds, 1.0, controls), semitones, drums)
    bank = find_soundfont(entry["soundfont"], entry["synth"])
    wave = render(
        perf,
        bank,
        sr,
        int(round(seconds * sr)),
        synth=entry["synth"],
        reverb=entry["reverb"],
        chorus=entry["chorus"],
        room_size=entry["effects"].get("room_size", 0.2),
    )
    return wave, dropped


def rubberband(wave: np.ndarray, sr: int, semitones: float, engine: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(str(src), wave, sr, subtype="FLOAT")
        cmd = ["rubberband", engine, "-q", "-p", repr(float(semitones)), str(src), str(dst)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"rubberband failed: {proc.stderr.strip()}")
        out, _ = sf.read(str(dst), dtype="float32")
    return out


_WORKER: dict = {}


def init_worker(methods: list[str]) -> None:
    if "gan" in methods:
        from gan_stretch import Stretcher

        _WORKER["gan"] = Stretcher(device="cpu")


def shifted(method: str, src: np.ndarray, sr: int, n: int) -> np.ndarray:
    if method == "gan":
        return _WORKER["gan"].shift(src, sr, n)
    if method == "librosa":
        import librosa

        return librosa.effects.pitch_shift(src, sr=sr, n_steps=n)
    if method == "rubberband":
        return rubberband(src, sr, n, "-2")
    if method == "rubberband-r3":
        return rubberband(src, sr, n, "-3")
    if method == "unshifted":
        return src
    raise SystemExit(f"error: unknown method {method!r} (use {', '.join(METHODS)})")


def score_item(job) -> list[dict]:
    """Every shift and method on one item: its rows of results.csv."""
    root, index, semitones, methods, visqol, keep_drums = job
    corpus = Corpus(root)
    entry = corpus.manifest["items"][index]
    item = corpus.items[index]
    sr = corpus.sample_rate
    src = corpus.load(item, 1.0)
    plain, _ = rebuild(corpus, entry, 0)
    # the set's gain (levels are drawn per item): least squares of the rebuilt render onto the file
    gain = float(np.dot(src, plain) / max(np.dot(plain, plain), 1e-20))
    error = float(np.linalg.norm(src - gain * plain) / max(np.linalg.norm(src), 1e-20))
    drums = bool(entry.get("drum_onsets"))
    if drums and not keep_drums:  # the input without its drums too: the same render less the drum channel
        src = (gain * rebuild(corpus, entry, 0, drums=False)[0]).astype(np.float32)
    rows = []
    for n in semitones:
        truth, dropped = rebuild(corpus, entry, n, drums=keep_drums)
        truth = (gain * truth).astype(np.float32)
        for method in methods:
            y = np.asarray(shifted(method, src, sr, n), dtype=np.float32).reshape(-1)
            length = y.shape[-1]
            y = np.pad(y[: truth.shape[-1]], (0, max(0, truth.shape[-1] - length)))
            rows.append(
                {
                    "set": Path(root).name,
                    "piece": item.id,
                    "semitones": n,
                    "method": method,
                    "logmel_db": metrics.log_mel_distance(y, truth, sr),
                    "visqol": metrics.visqol(y, truth, sr) if visqol else float("nan"),
                    "pitch_cents": metrics.pitch_shift_cents(y, truth, sr),
                    "length_error": length - truth.shape[-1],
                    "rebuild_error": error,
                    "notes_left_out": dropped,
                    "drums": "kept" if drums and keep_drums else "left out" if drums else "none",
                }
            )
    return rows


def mean_of(values) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def write_tables(rows: list[dict], semitones, methods) -> str:
    sets = list(dict.fromkeys(r["set"] for r in rows))
    out = []
    for measure in MEASURES:
        out += [f"### {measure} ({HOW[measure]}; mean over items)", ""]
        out.append("| set | method | " + " | ".join(f"{n:+d}" for n in semitones) + " | mean |")
        out.append("|---|---|" + "---|" * (len(semitones) + 1))
        for s in sets + ["both"]:
            for m in methods:
                mine = [r for r in rows if r["method"] == m and (s == "both" or r["set"] == s)]
                vals = [mean_of([r[measure] for r in mine if r["semitones"] == n]) for n in semitones]
                out.append(f"| {s} | {m} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {mean_of(vals):.2f} |")
        out.append("")
    return "\n".join(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="true-tempo evaluation sets (corpus folders)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--semitones", type=int, nargs="+", default=list(SEMITONES))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--pieces", type=int, default=None, help="first items of each set (default: all)")
    p.add_argument("--no-visqol", dest="visqol", action="store_false", help="skip ViSQOL (faster)")
    p.add_argument(
        "--keep-drums",
        action="store_true",
        help="keep the drum channel in the input and the truth (a shifter moves the drums, a transposed "
        "performance does not, so neither is the truth for them; by default both leave them out)",
    )
    p.add_argument("-j", "--jobs", type=int, default=None, help="items scored at once (default: one per core)")
    return p


def item_jobs(args) -> list[tuple]:
    """One job per item of each set (its first --pieces); exits with an error when rubberband is
    asked for but not installed, or a set is not a true-tempo corpus."""
    if any("rubberband" in m for m in args.methods) and shutil.which("rubberband") is None:
        raise SystemExit("error: rubberband is not installed (apt-get install rubberband-cli)")
    jobs = []
    for root in args.data:
        corpus = Corpus(root)
        if corpus.manifest.get("kind") != "true-tempo":
            raise SystemExit(f"error: {root} is not a true-tempo corpus (rendered from MIDI)")
        n = len(corpus.items) if args.pieces is None else min(args.pieces, len(corpus.items))
        jobs += [(str(root), i, args.semitones, args.methods, args.visqol, args.keep_drums) for i in range(n)]
    return jobs


def score_items(args, jobs: list[tuple]) -> tuple[list[dict], list[str]]:
    """Scores the items in parallel: the rows in the order of --jobs 1 and the failures (one line each)."""
    rows, failed = [], []
    for i, result, error in parallel.imap(
        score_item,
        jobs,
        parallel.check_jobs(args.jobs),
        desc="pitch",
        unit="item",
        init=init_worker,
        initargs=(args.methods,),
    ):
        if error is not None:
            failed.append(f"{jobs[i][0]} item {jobs[i][1]}: {parallel.describe(error)}")
            print(f"failed: {failed[-1]}", file=sys.stderr)
        else:
            rows += result
    if not rows:
        raise SystemExit("error: nothing was scored")
    key = {(r["set"], r["piece"]): k for k, r in enumerate(rows)}  # the order of --jobs 1
    rows.sort(key=lambda r: (key[(r["set"], r["piece"])], r["semitones"], args.methods.index(r["method"])))
    return rows, failed


def page_head(rows: list[dict], keep_drums: bool) -> str:
    """table.md's title and the paragraph on the truth and the drums."""
    items = sorted({(r["set"], r["piece"]) for r in rows})
    worst = max(r["rebuild_error"] for r in rows)
    return (
        f"# Pitch shift against transposed renders: {len(items)} items of "
        f"{', '.join(dict.fromkeys(r['set'] for r in rows))}\n\n"
        f"The truth is each item's MIDI rendered with its pitched notes moved by n semitones, same bank, "
        f"effects and gain; the rebuilt untransposed render matches the set's file within "
        f"{100 * worst:.2f}% (relative RMS). Each method shifts the set's rate-1 file"
        + (
            "; items with drums are scored with the drums in the input and the truth (a shifter moves them, the "
            "truth keeps them)"
            if keep_drums
            else "; items with drums are scored without them, in the input and in the truth (the rebuilt render "
            "less its drum channel): a shifter moves drums, a transposed performance keeps them, so neither "
            "is a truth for the drums"
        )
        + ".\n\n"
    )


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    rows, failed = score_items(args, item_jobs(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "results.csv", rows)
    head = page_head(rows, args.keep_drums)
    tables = write_tables(rows, args.semitones, args.methods)
    (out / "table.md").write_text(head + tables + ("\n" + "\n".join(failed) + "\n" if failed else ""))
    (out / "config.json").write_text(
        json.dumps({"command": "python eval/pitch.py " + " ".join(argv or sys.argv[1:]), **vars(args)}, indent=2)
    )
    print(tables)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
