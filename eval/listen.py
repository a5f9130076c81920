"""A listening page for a benchmark run: hear every method side by side, and rate them blind.

    python eval/benchmark.py --data data/true-tempo --out results/NAME --model gan=... --methods pv wsola --listen
    python eval/listen.py --results results/NAME            # (re)builds results/NAME/listen/ from results/NAME/audio/
    python eval/listen.py --results results/NAME --screenshot   # + results/NAME/listen.png (headless Chromium)
    python eval/listen.py --score ratings-ann.json ratings-bob.json --out results/NAME/scores

``--results`` writes a static folder ``DIR/listen/`` that opens from disk (no server):
  index.html  per held-out piece and rate: the input, the true-tempo render (the reference) and every
              method's output, each with its mel spectrogram (one colour scale per row) and the per-clip
              measures of ``DIR/results.csv`` (whatever metric columns it has)
  blind.html  a MUSHRA-style test (ITU-R BS.1534): per trial the reference on top, then the methods, a
              hidden copy of the reference and a low anchor (resampling: the pitch moves) in an order
              shuffled per trial and listener under neutral letters, a 0-100 slider each; ratings stay in
              the browser (localStorage) and download as JSON

Recorded music has no truth (``eval/benchmark.py --recordings CORPUS --listen``; trial.json ``"truth": null``):
the input at its own tempo is the reference, the page says that no truth exists, and the blind test is
MUSHRA-like without a hidden reference: each method and the anchor is rated for how natural it sounds as a
performance at the new tempo, against the original's sound and pitch.
  audio/      16-bit FLAC, every clip of a trial normalised to the same integrated loudness (BS.1770)
  spec/       400x150 PNG spectrograms

``--score`` turns downloaded rating files into a table (mean and 95 % t-interval per method and rate),
``ratings.csv`` and a plot, after the standard post-screening: a listener who rates the hidden reference
below 90 in more than 15 % of the trials is reported and excluded.

The benchmark's ``--listen`` stores the raw clips with ``save_trial`` under ``DIR/audio/<piece>/<rate>/``
(24-bit FLAC + trial.json) and calls ``build`` at the end.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import soundfile as sf

from gan_stretch.errors import GanStretchError
from gan_stretch.io.checkpoint import atomic_write
from gan_stretch.stretching import teachers

TARGET_LUFS = -23.0  # EBU R 128's programme level
PEAK_DBFS = -1.0  # no clip peaks above this after normalisation (sample peak)
SPEC_PX = (400, 150)  # spectrogram width, height in pixels
SPEC_RANGE_DB = 80.0  # colour range of a row: its loudest bin down to 80 dB below
SCREEN_THRESHOLD, SCREEN_FRACTION = 90.0, 0.15  # BS.1534 post-screening of listeners
RESERVED = ("input", "truth", "reference", "anchor")  # clip names the page uses for itself
FORMAT = "gan-stretch-mushra/1"
PAGE_DIR = Path(__file__).resolve().parent / "listen_page"


class ListenError(GanStretchError):
    """A results folder without clips, or a rating file that cannot be scored."""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


# ---------------------------------------------------------------- raw clips (written by the benchmark)


def clear_clips(results: str | os.PathLike) -> None:
    """Removes ``results/audio/`` so that a new benchmark run does not mix with an older one's clips."""
    shutil.rmtree(Path(results) / "audio", ignore_errors=True)


def save_trial(
    results: str | os.PathLike,
    piece: str,
    rate: float,
    sr: int,
    src: np.ndarray,
    truth: np.ndarray | None,
    outputs: dict[str, np.ndarray],
) -> Path:
    """Stores one (piece, rate): the input ``src``, the true-tempo render ``truth`` (None for recorded music,
    which has none) and each method's output (float [N] or [C, N]) as 24-bit FLAC in
    ``results/audio/<piece>/<rate>/`` with a trial.json naming them.

    FLAC holds integers, so a clip that peaks above full scale is scaled down to fit; the gain is recorded
    (the page normalises loudness anyway). trial.json is written last: a folder without it is ignored.
    """
    bad = [m for m in outputs if m in RESERVED]
    if bad:
        raise ListenError(
            f"method name {bad[0]!r} is reserved by the listening page; rename it (reserved: {', '.join(RESERVED)})"
        )
    folder = Path(results) / "audio" / slug(piece) / f"rate{float(rate):g}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    clips, gains = {}, {}
    waves = {"input": src, **({} if truth is None else {"truth": truth}), **outputs}
    for i, (name, wave) in enumerate(waves.items()):
        wave = np.atleast_2d(np.asarray(wave, dtype=np.float32))  # [C, N]
        if wave.shape[-1] == 0 or not np.isfinite(wave).all():
            raise ListenError(f"{name} of {piece} at rate {rate:g} is empty or holds NaN/Inf samples")
        peak = float(np.abs(wave).max())
        gain = min(1.0, 0.999 / peak) if peak > 0 else 1.0
        file = f"{i:02d}-{slug(name)}.flac"
        sf.write(str(folder / file), (wave * gain).T, sr, subtype="PCM_24")
        clips[name], gains[name] = file, round(20 * math.log10(gain), 3)
    meta = {
        "piece": piece,
        "rate": float(rate),
        "sample_rate": sr,
        "input": clips.pop("input"),
        "truth": clips.pop("truth", None),
        "methods": clips,
        "gain_db": gains,
    }
    with atomic_write(folder / "trial.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return folder


def load_trials(results: Path) -> list[dict]:
    trials = []
    for path in sorted((results / "audio").glob("*/*/trial.json")):
        meta = json.loads(path.read_text())
        meta["folder"] = path.parent
        trials.append(meta)
    trials.sort(key=lambda t: (t["piece"], t["rate"]))
    if not trials:
        raise ListenError(
            f"no clips under {results / 'audio'}: run eval/benchmark.py with --listen "
            "(it stores the input, the truth and every output there)"
        )
    if len({t.get("truth") is None for t in trials}) > 1:
        raise ListenError(
            f"{results / 'audio'} mixes trials with a truth and recordings without one; "
            "rerun the benchmark with --listen into an empty results folder"
        )
    return trials


def read_measures(results: Path) -> tuple[list[str], dict]:
    """results.csv -> (metric columns, {(piece, method, rate): {column: value}})."""
    path = results / "results.csv"
    if not path.is_file():
        return [], {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    labels = ("piece", "program", "method", "rate", "recording", "style", "sample_rate")  # not measures
    columns = [c for c in (rows[0] if rows else {}) if c not in labels]
    table = {}
    for r in rows:
        try:
            table[(r["piece"], r["method"], round(float(r["rate"]), 6))] = {c: r[c] for c in columns}
        except (KeyError, ValueError):
            continue  # a row without piece, method or rate cannot be placed
    return columns, table


# ---------------------------------------------------------------- loudness and spectrograms


def loudness(wave: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 via pyloudnorm) of float [C, N]; -inf when silent."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sr)
    if wave.shape[-1] < int(meter.block_size * sr):
        raise ListenError(
            f"a clip of {wave.shape[-1] / sr:.2f} s is shorter than the 0.4 s block that BS.1770 loudness needs"
        )
    return float(meter.integrated_loudness(wave.T.astype(np.float64)))


def match_loudness(clips: dict[str, np.ndarray], sr: int) -> tuple[dict[str, np.ndarray], float]:
    """Scales every clip to one integrated loudness: TARGET_LUFS, or lower where that would lift some clip's
    sample peak above PEAK_DBFS (the whole trial moves down together, so the match holds and nothing clips).
    Silent clips are left as they are. Returns (scaled clips, the level used in LUFS)."""
    levels = {n: loudness(w, sr) for n, w in clips.items()}
    level = TARGET_LUFS
    for n, w in clips.items():
        peak = float(np.abs(w).max())
        if np.isfinite(levels[n]) and peak > 0:
            level = min(level, levels[n] + PEAK_DBFS - 20 * math.log10(peak))  # headroom of this clip
    out = {n: w * 10 ** ((level - levels[n]) / 20) if np.isfinite(levels[n]) else w for n, w in clips.items()}
    return out, level


def mel_db(wave: np.ndarray, sr: int) -> np.ndarray:
    """Mel power spectrogram in dB (n_fft 1024, hop 256, 96 mels) of the mono mix: [mels, frames]."""
    import librosa

    mel = librosa.feature.melspectrogram(y=wave.mean(axis=0), sr=sr, n_fft=1024, hop_length=256, n_mels=96)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def save_spectrograms(specs: dict[str, np.ndarray], paths: dict[str, Path]) -> tuple[float, float]:
    """One PNG (SPEC_PX) per clip, all on the row's colour scale: its loudest bin down SPEC_RANGE_DB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmax = max(float(s.max()) for s in specs.values())
    vmin = vmax - SPEC_RANGE_DB
    for name, s in specs.items():
        fig = plt.figure(figsize=(SPEC_PX[0] / 100, SPEC_PX[1] / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(s, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax, interpolation="bilinear")
        ax.set_axis_off()
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(paths[name], dpi=100)
        plt.close(fig)
    return vmin, vmax


# ---------------------------------------------------------------- the page


def clip_id(trial_id: str, name: str) -> str:
    """An opaque file name, so that a clip's method is not in the URL the blind test plays."""
    return hashlib.sha1(f"{trial_id}/{name}".encode()).hexdigest()[:10]


def fmt(value: str) -> str:
    try:
        v = float(value)
    except ValueError:
        return html.escape(value)
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def build_trial(work: Path, k: int, t: dict, truth: bool, measures: dict) -> dict:
    """Writes trial ``k``'s clips (its input, the reference when there is a truth, each method's and
    the resampled anchor, loudness-matched; and a copy at the reference's length for the blind test
    where a clip's length differs) and spectrograms under ``work``; returns the trial for the pages."""
    folder, sr, rate = t["folder"], int(t["sample_rate"]), float(t["rate"])
    tid = f"{t['piece']}@{rate:g}"
    raw = {"input": t["input"], **({"reference": t["truth"]} if truth else {}), **t["methods"]}
    clips = {n: sf.read(str(folder / f), dtype="float32", always_2d=True)[0].T for n, f in raw.items()}
    # the low anchor: plain resampling, right duration, pitch moved by 12*log2(rate) semitones
    clips["anchor"] = teachers.resample(clips["input"], sr, rate)
    clips, level = match_loudness(clips, sr)
    sub = f"t{k + 1:02d}"
    files = {n: f"audio/{sub}/{clip_id(tid, n)}.flac" for n in clips}
    pngs = {n: f"spec/{sub}/{clip_id(tid, n)}.png" for n in clips}
    for n, w in clips.items():
        (work / files[n]).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(work / files[n]), w.T, sr, subtype="PCM_16")
    save_spectrograms({n: mel_db(w, sr) for n, w in clips.items()}, {n: work / p for n, p in pngs.items()})
    # The blind test plays every item at the reference's length (cut or padded with silence): a
    # clip that ends early would give its method away by the player's duration. Without a truth:
    # at the length the rate asks for, the input's divided by the rate.
    n_ref = clips["reference"].shape[-1] if truth else int(round(clips["input"].shape[-1] / rate))
    blind = {
        n: files[n] if w.shape[-1] == n_ref else f"audio/{sub}/{clip_id(tid, n + '/blind')}.flac"
        for n, w in clips.items()
        if n != "input"
    }
    for n, f in blind.items():
        if f != files[n]:
            sf.write(str(work / f), teachers.fit_length(clips[n], n_ref).T, sr, subtype="PCM_16")
    items = []
    for n, w in clips.items():
        m = measures.get((t["piece"], n, round(rate, 6)), {})
        items.append(
            {
                "method": n,
                "src": files[n],
                "blind_src": blind.get(n),
                "png": pngs[n],
                "seconds": round(w.shape[-1] / sr, 3),
                "measures": m,
            }
        )
    return {"id": tid, "piece": t["piece"], "rate": rate, "level_lufs": round(level, 1), "items": items}


def publish(work: Path, results: Path, page_trials: list[dict], columns, truth: bool) -> None:
    """Writes index.html and blind.html into ``work`` and moves it into place as ``results/listen``
    (the previous page, if any, replaced in one step)."""
    page_id = hashlib.sha1(
        json.dumps([(t["id"], [(i["src"], i["blind_src"]) for i in t["items"]]) for t in page_trials]).encode()
    ).hexdigest()[:12]
    (work / "index.html").write_text(compare_html(results.name, page_trials, columns, truth))
    (work / "blind.html").write_text(blind_html(results.name, page_trials, page_id, truth))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)  # mkdtemp's folder is private; the page is not
    final = results / "listen"
    old = results / f".listen-old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(work, final)
    shutil.rmtree(old, ignore_errors=True)


def build(results: str | os.PathLike) -> Path:
    """Writes ``results/listen/`` (index.html, blind.html, audio/, spec/) from ``results/audio/`` and
    ``results/results.csv``; returns the path of index.html. Built in a temporary folder and moved into
    place at the end, so an interrupted build leaves the previous page (or none), never half of one."""
    results = Path(results)
    trials = load_trials(results)
    truth = trials[0].get("truth") is not None  # recorded music: none; the input is the reference
    columns, measures = read_measures(results)
    work = Path(tempfile.mkdtemp(prefix=".listen-partial-", dir=results))
    try:
        page_trials = [build_trial(work, k, t, truth, measures) for k, t in enumerate(trials)]
        publish(work, results, page_trials, columns, truth)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results / "listen" / "index.html"


def _template(name: str) -> str:
    return (PAGE_DIR / name).read_text()


def _json_for_script(data) -> str:
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


LOUDNESS_NOTE = (
    "Every clip of a row is normalised to the same integrated loudness (ITU-R BS.1770-4, "
    f"measured with pyloudnorm): {TARGET_LUFS:g} LUFS, or lower for the whole row where a clip "
    f"would otherwise peak above {PEAK_DBFS:g} dBFS, so no method sounds better for being louder "
    "and nothing clips. The level used is shown per row."
)


KINDS = {"input": "original tempo", "reference": "true-tempo render", "anchor": "resampled: pitch moves"}
INTRO = {
    True: "rows, one per held-out piece and rate: the input, the true-tempo render of the same performance at "
    "the new tempo (the reference: what a perfect stretch sounds like), every scored method and a low anchor "
    "(plain resampling, which moves the pitch). Each clip's measures against the reference come from the "
    "benchmark's <code>results.csv</code>.",
    False: "rows, one per held-out excerpt of recorded music and rate: the input at its own tempo, every scored "
    "method and a low anchor (plain resampling, which moves the pitch). <b>No truth exists</b>: nobody "
    "recorded these performances at the new tempo, so the input is the only reference, and what a perfect "
    "stretch sounds like is for the ear to judge. Each clip's measures come from the benchmark's "
    "<code>results.csv</code> and need no truth: naturalness (a two-sample classifier's accuracy against "
    "unstretched excerpts; 0.5: indistinguishable), the round trip (r then 1/r against the input), level "
    "change per band, pitch and duration.",
}
HOW_BLIND = {
    True: "Each trial has a <b>reference</b> on top: the piece truly played at the new tempo. Under it, lettered "
    "items in a shuffled order: the stretching methods, a hidden copy of the reference and a low anchor. Listen "
    "to each as often as you like and rate how close it sounds to the reference, from 0 (bad) to 100 "
    "(excellent, indistinguishable from the reference); one item should be the reference itself.",
    False: "Recorded music: <b>no truth exists</b>, nobody played these excerpts at the new tempo. Each trial "
    "has the <b>original</b> on top, at its own tempo. Under it, lettered items in a shuffled order: the "
    "stretching methods and a low anchor, all at the new tempo (there is no hidden reference). Listen to each "
    "as often as you like and rate how natural it sounds as a performance at that tempo, with the original's "
    "sound and pitch, from 0 (bad: broken, smeared, wrong pitch) to 100 (excellent: as if played at that "
    "tempo).",
}
REFERENCE_TEXT = {
    True: "Reference: the true-tempo render. Rate every item below against it.",
    False: "Original at its own tempo (no truth exists). Rate how natural each item below sounds at the new tempo.",
}


def compare_html(title: str, trials: list[dict], columns: list[str], truth: bool = True) -> str:
    e = html.escape
    rows = []
    for t in trials:
        cards = []
        for it in t["items"]:
            shown = [c for c in columns if c in it["measures"]]
            table = "".join(
                f"<tr><th>{e(c).replace('_', '_<wbr>')}</th><td>{fmt(it['measures'][c])}</td></tr>" for c in shown
            )  # long column names break after an underscore
            kind = it["method"] if it["method"] in ("input", "reference", "anchor") else "method"
            what = KINDS.get(it["method"], "method")
            if it["method"] == "input" and not truth:
                what = "original tempo: the reference (no truth exists)"
            cards.append(
                f'<figure class="card {kind}"><figcaption><span class="name">{e(it["method"])}</span>'
                f'<span class="dur">{it["seconds"]:.2f} s</span></figcaption>'
                f'<div class="kind">{e(what)}</div>'
                f'<img src="{e(it["png"])}" width="{SPEC_PX[0]}" height="{SPEC_PX[1]}" alt="spectrogram of '
                f'{e(it["method"])}" loading="lazy">'
                f'<audio controls preload="none" src="{e(it["src"])}"></audio>'
                + (f'<table class="measures">{table}</table>' if table else "")
                + "</figure>"
            )
        rows.append(
            f'<section class="trial" id="{e(slug(t["id"]))}"><h2>{e(t["piece"])} '
            f'<span class="rate">rate {t["rate"]:g} ({1 / t["rate"]:.3g}&times; the duration)</span>'
            f'<span class="level">{t["level_lufs"]:g} LUFS</span></h2>'
            f'<div class="row">{"".join(cards)}</div></section>'
        )
    return (
        _template("compare.html")
        .replace("{{TITLE}}", e(title))
        .replace("{{STYLE}}", _template("style.css"))
        .replace("{{NOTE}}", e(LOUDNESS_NOTE))
        .replace("{{INTRO}}", f"{len(trials)} {INTRO[truth]}")
        .replace("{{ROWS}}", "\n".join(rows))
        .replace("{{SCRIPT}}", _template("common.js"))
    )


def blind_html(title: str, trials: list[dict], page_id: str, truth: bool = True) -> str:
    reference = "reference" if truth else "input"  # without a truth the original, at its own tempo
    data = {
        "format": FORMAT,
        "page": page_id,
        "title": title,
        "truth": truth,
        "reference_text": REFERENCE_TEXT[truth],
        "trials": [
            {
                "id": t["id"],
                "piece": t["piece"],
                "rate": t["rate"],
                "reference": next(i["src"] for i in t["items"] if i["method"] == reference),
                # the methods under test: every output, the hidden reference (where a truth exists) and the anchor
                "items": [{"method": i["method"], "src": i["blind_src"]} for i in t["items"] if i["method"] != "input"],
            }
            for t in trials
        ],
    }
    e = html.escape
    return (
        _template("blind.html")
        .replace("{{TITLE}}", e(title))
        .replace("{{STYLE}}", _template("style.css"))
        .replace("{{NOTE}}", e(LOUDNESS_NOTE))
        .replace("{{HOW}}", HOW_BLIND[truth])
        .replace("{{DATA}}", _json_for_script(data))
        .replace("{{SCRIPT}}", _template("common.js") + _template("blind.js"))
    )


# ---------------------------------------------------------------- scoring downloaded ratings


def read_ratings(path: str | os.PathLike) -> dict:
    """One downloaded rating file, checked: {listener, trials: [{trial, rate, mapping, ratings}]}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ListenError(f"rating file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as ex:
        raise ListenError(f"cannot read rating file {path}: {ex}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ListenError(f"{path} is not a rating file of the listening page (format {FORMAT!r} expected)")
    if not str(data.get("listener", "")).strip():
        raise ListenError(f"{path} has no listener name")
    for t in data.get("trials", []):
        try:
            mapping, ratings = dict(t["mapping"]), dict(t["ratings"])
            float(t["rate"]), str(t["trial"])
        except (KeyError, TypeError, ValueError):
            raise ListenError(f"{path}: a trial lacks its id, rate, mapping or ratings") from None
        for letter, value in ratings.items():
            if letter not in mapping:
                raise ListenError(f"{path}: trial {t['trial']!r} rates item {letter!r}, which its mapping lacks")
            if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise ListenError(f"{path}: trial {t['trial']!r} item {letter}: rating {value!r} is not in 0..100")
    return data


def screen(files: list[dict]) -> tuple[list[str], dict[str, str]]:
    """BS.1534 post-screening -> (listeners kept, {listener excluded: why}). A rating file of a page without
    truth (recorded music) has no hidden reference to screen with: its listener is kept."""
    kept, excluded = [], {}
    for data in files:
        name = data["listener"]
        if data.get("truth") is False:  # recorded music: no hidden reference to screen with
            kept.append(name)
            continue
        refs = [v for t in data["trials"] for letter, v in t["ratings"].items() if t["mapping"][letter] == "reference"]
        low = sum(v < SCREEN_THRESHOLD for v in refs)
        if refs and low > SCREEN_FRACTION * len(refs):
            excluded[name] = (
                f"rated the hidden reference below {SCREEN_THRESHOLD:g} in {low} of {len(refs)} "
                f"trials ({100 * low / len(refs):.0f} % > {100 * SCREEN_FRACTION:g} %)"
            )
        elif not refs:
            excluded[name] = "rated the hidden reference in no trial (cannot be screened)"
        else:
            kept.append(name)
    return kept, excluded


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (nan for a single rating)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


ORDER = {"reference": 0, "anchor": 2}


def screening_lines(files: list[dict], kept, excluded: dict) -> list[str]:
    """The report's title and post-screening: who is excluded and why, and who is not screened."""
    lines = [
        f"# listening test: {len(files)} listener(s), {len(kept)} kept",
        "",
        f"Post-screening (ITU-R BS.1534): a listener who rates the hidden reference below "
        f"{SCREEN_THRESHOLD:g} in more than {100 * SCREEN_FRACTION:g} % of the trials is excluded.",
        "",
    ]
    lines += [f"- {n}: excluded, {why}" for n, why in excluded.items()] or ["- nobody excluded"]
    lines += [
        f"- {f['listener']}: not screened, recorded music has no truth and so no hidden reference "
        "(rated: how natural each item sounds at the new tempo)"
        for f in files
        if f.get("truth") is False
    ]
    return lines


def rating_rows(files: list[dict]) -> list[dict]:
    """One row per rating: listener, trial, rate, letter, the method behind the letter, rating."""
    return [
        {
            "listener": f["listener"],
            "trial": t["trial"],
            "rate": float(t["rate"]),
            "letter": letter,
            "method": t["mapping"][letter],
            "rating": float(v),
        }
        for f in files
        for t in f["trials"]
        for letter, v in sorted(t["ratings"].items())
    ]


def score_lines(used: list[dict]) -> tuple[list[str], dict, list[str], list[float]]:
    """The MUSHRA table of the kept ratings, per method and rate and over all rates; with its cells
    ((method, rate or None) -> (mean, half-width)), the methods (reference first, anchor last) and rates."""
    rates = sorted({r["rate"] for r in used})
    methods = sorted({r["method"] for r in used}, key=lambda m: (ORDER.get(m, 1), m))
    cells, counts = {}, {}  # (method, rate or None for all rates) -> (mean, half-width), number of ratings
    for m in methods:
        for rate in [*rates, None]:
            values = [r["rating"] for r in used if r["method"] == m and rate in (None, r["rate"])]
            if values:
                cells[m, rate], counts[m, rate] = interval(values), len(values)

    def cell(m, rate):
        if (m, rate) not in cells:
            return "-"
        (mean, half), n = cells[m, rate], counts[m, rate]
        return f"{mean:.1f} ± {half:.1f} ({n})" if math.isfinite(half) else f"{mean:.1f} ({n})"

    lines = [
        "",
        "MUSHRA score 0-100, mean ± half-width of the 95 % t-interval over ratings (number of ratings); "
        "higher is better",
        "",
        "| method | " + " | ".join(f"rate {r:g}" for r in rates) + " | all rates |",
        "|---|" + "---|" * (len(rates) + 1),
    ]
    lines += [f"| {m} | " + " | ".join(cell(m, r) for r in [*rates, None]) + " |" for m in methods]
    return lines, cells, methods, rates


def score(paths: list[str | os.PathLike], out: str | os.PathLike) -> str:
    """Scores rating files; writes ``out/listening.md``, ``ratings.csv`` and ``listening.png``; returns the
    report (post-screening and the table)."""
    files = [read_ratings(p) for p in paths]
    names = [f["listener"] for f in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ListenError(f"listener {dupes[0]!r} has more than one rating file; merge or rename them")
    kept, excluded = screen(files)
    lines = screening_lines(files, kept, excluded)
    rows = rating_rows(files)
    used = [r for r in rows if r["listener"] in kept]
    if not used:
        raise ListenError("\n".join(lines[2:] + ["no ratings left to score"]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "ratings.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], "kept"])
        w.writeheader()
        w.writerows({**r, "kept": r["listener"] in kept} for r in rows)
    table, cells, methods, rates = score_lines(used)
    report = "\n".join(lines + table) + "\n"
    with atomic_write(out / "listening.md") as tmp:
        tmp.write_text(report)
    plot_scores(cells, methods, rates, out / "listening.png")
    return report


def plot_scores(cells: dict, methods: list[str], rates: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(rates) + 3), 4))
    width = 0.8 / max(len(methods), 1)
    for k, m in enumerate(methods):
        xs = [i + (k - (len(methods) - 1) / 2) * width for i, r in enumerate(rates) if (m, r) in cells]
        means = [cells[m, r][0] for r in rates if (m, r) in cells]
        halves = [np.nan_to_num(cells[m, r][1]) for r in rates if (m, r) in cells]
        ax.errorbar(xs, means, yerr=halves, fmt="o", capsize=3, label=m)
    ax.set_xticks(range(len(rates)), [f"{r:g}" for r in rates])
    ax.set_xlabel("rate (speed)")
    ax.set_ylabel("MUSHRA score (mean, 95 % CI)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- command line


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--results", help="a benchmark results folder run with --listen: writes DIR/listen/")
    what.add_argument("--score", nargs="+", metavar="RATINGS.json", help="downloaded rating files to score")
    p.add_argument(
        "--out",
        help="with --score: folder for listening.md, ratings.csv, listening.png "
        "(default: the first rating file's folder)",
    )
    p.add_argument(
        "--screenshot", action="store_true", help="with --results: also write DIR/listen.png with headless Chromium"
    )
    args = p.parse_args(argv)
    try:
        if args.score:
            print(score(args.score, args.out or Path(args.score[0]).parent), end="")
            return 0
        page = build(args.results)
        print(f"listening page: {page}  (blind test: {page.parent / 'blind.html'})")
        if args.screenshot:
            from eval.browser import screenshot  # eval/browser.py: Selenium + Debian's chromium

            print(f"screenshot: {screenshot(page, Path(args.results) / 'listen.png')}")
        return 0
    except GanStretchError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
