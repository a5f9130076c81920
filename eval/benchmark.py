"""Score stretching methods against true-tempo renders of held-out pieces.

    python eval/benchmark.py --data data/true-tempo --out results/NAME \
        --model gan=runs/gan/model.safetensors --model mapper=runs/mapper/model.safetensors \
        --methods pv rubberband-r3 wsola [--rates 0.5 0.75 1.25 1.5 2.0] [--pieces 8]

Methods: every ``--model NAME=PATH`` (a model of kind autoencoder is plain latent interpolation;
``NAME=PATH@griffin_lim=16,phase_lock=0,residual=0,transients=1`` scores it with other pipeline settings),
the classical stretchers of gan_stretch.stretching.teachers, and the ceilings
  ceiling-phase     the TRUE stretched magnitudes through our phase reconstruction
  ceiling-ae        the TRUE stretched audio through the autoencoder (needs a --model) + phase
  interp-magnitude  input magnitudes interpolated in time (no autoencoder) + our phase
Writes results.csv (one row per piece, method and rate), table.md, one PNG per metric, and
config.json (the exact command and inputs). ``--listen`` also stores every clip under audio/ and writes
a listening page, listen/index.html (eval/listen.py).

    python eval/benchmark.py --recordings /usr/share/scummvm/drascula/audio --out results/recorded \
        --model gan=... --methods pv rubberband-r3 wsola

scores recorded music, which has no ground truth: duration error, pitch shift against the input
and log-mel distance to each classical stretcher's output. With a recordings corpus (``gan-stretch data
recordings``), ``--listen`` stores the input and every output of the first ``--listen-pieces`` excerpts
and writes a listening page whose reference is the input at its own tempo.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from einops import rearrange
from tqdm import tqdm

from eval import listen, validate_naturalness
from eval.measures import MEASURES
from eval.results import write_rows
from gan_stretch.cli.stretch import attack_span
from gan_stretch.data.manifest import Corpus
from gan_stretch.dsp import phase_vocoder, spectrum, synthesis, timemap
from gan_stretch.measures import metrics
from gan_stretch.measures import naturalness as nat
from gan_stretch.models.model_file import load_model, resolve_checkpoint
from gan_stretch.runtime import parallel
from gan_stretch.stretching import teachers
from gan_stretch.stretching.stretcher import Stretcher

METRICS = (
    "logmel_db",
    "visqol",
    "attack_db",
    "smear_db",
    "attack_high_db",
    "smear_high_db",
    "oversmoothing_db",
    "spectral_convergence",
    "mrstft",
    "duration_error_ms",
    "pitch_cents",
    "realtime_factor",
)
PERCEPTION = ("visqol", "attack_db", "smear_db", "attack_high_db", "smear_high_db", "oversmoothing_db")
CEILINGS = ("ceiling-phase", "ceiling-ae", "interp-magnitude")


def ceiling(
    kind: str,
    stretcher: Stretcher | None,
    cfg,
    src: np.ndarray,
    truth: np.ndarray,
    rate: float,
    griffin_lim: int,
    phase_lock: bool,
) -> np.ndarray:
    """Reference pipelines that isolate one stage's error (see the module docstring)."""
    wave = torch.from_numpy(src[None])
    spec = spectrum.stft(wave, cfg)
    n_out = truth.shape[-1]
    positions = timemap.stretch_positions(spec.shape[-1], cfg.n_frames(n_out), rate)
    phase = phase_vocoder.propagate_phase(spec, positions, cfg)
    if kind == "interp-magnitude":
        mag = rearrange(timemap.time_scale(rearrange(spec.abs(), "c f t -> c t f"), positions), "c t f -> c f t")
    else:
        mag = spectrum.stft(torch.from_numpy(truth[None]), cfg).abs()
        if kind == "ceiling-ae":
            ref = spectrum.reference_db(mag)
            ae = stretcher.model.autoencoder.cpu()
            db = ae.decode(ae.encode(rearrange(spectrum.magnitude_to_db(mag, ref, cfg), "c f t -> c t f")))
            mag = spectrum.db_to_magnitude(rearrange(db, "c t f -> c f t"), ref)
    if phase_lock:  # the models' phase reconstruction: propagated, locked, refined
        phase = phase_vocoder.lock_phase(phase, mag, torch.angle(spec), positions)
    return synthesis.reconstruct(mag, phase, cfg, n_out, griffin_lim)[0].numpy()


def score(
    out: np.ndarray,
    src: np.ndarray,
    truth: np.ndarray,
    sr: int,
    seconds: float,
    onsets: np.ndarray | None = None,
    visqol: bool = True,
    drums: np.ndarray | None = None,
) -> dict:
    """Every per-clip measure of ``out`` against ``truth`` (``onsets``: the score's note onsets in
    the output's time, seconds; attack and smear are NaN without them; ``drums``: its drum hits,
    where the band above the model's is measured in files sampled above 22.05 kHz)."""
    out = np.asarray(out, dtype=np.float32).reshape(-1)
    nan = float("nan")
    high = drums is not None and len(drums) > 0 and sr > 2 * metrics.HIGH_BAND_HZ * 1.05
    return {
        "logmel_db": metrics.log_mel_distance(out, truth, sr),
        "visqol": metrics.visqol(out, truth, sr) if visqol else nan,
        "attack_db": metrics.attack_db(out, truth, sr, onsets) if onsets is not None else nan,
        "smear_db": metrics.smear_db(out, truth, sr, onsets) if onsets is not None else nan,
        "attack_high_db": metrics.attack_db(out, truth, sr, drums, metrics.HIGH_BAND_HZ) if high else nan,
        "smear_high_db": metrics.smear_db(out, truth, sr, drums, metrics.HIGH_BAND_HZ) if high else nan,
        "oversmoothing_db": metrics.oversmoothing_db(out, truth, sr),
        "spectral_convergence": metrics.spectral_convergence(out, truth),
        "mrstft": metrics.multi_resolution_stft_distance(out, truth),
        "duration_error_ms": 1000 * metrics.duration_error(out, truth.shape[-1], sr),
        "pitch_cents": metrics.pitch_shift_cents(out, src, sr),
        "realtime_factor": src.shape[-1] / sr / max(seconds, 1e-9),
    }


HOW = {name: m.note for name, m in MEASURES.items()}  # under each table of table.md


def mean_of(values) -> float:
    """Mean of the finite values (NaN where a measure does not apply, e.g. attacks without onsets)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    return float(v.mean()) if len(v) else float("nan")


def measured(rows: list[dict], metric: str) -> bool:
    """Whether any row has a finite value of ``metric`` (not every measure applies to every set:
    ViSQOL can be skipped, attacks need onsets, the band above 11 kHz a 44.1 kHz set)."""
    return any(np.isfinite(r.get(metric, np.nan)) for r in rows)


def write_table(rows: list[dict], metric: str = "logmel_db") -> str:
    """A markdown table of ``metric``: one line per method, one column per rate, means over pieces."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    rates = sorted({r["rate"] for r in rows})
    lines = [
        f"{metric} (mean over pieces; {HOW[metric]})",
        "",
        "| method | " + " | ".join(f"{r:g}" for r in rates) + " | mean |",
        "|---|" + "---|" * (len(rates) + 1),
    ]
    for m in methods:
        vals = [mean_of([r[metric] for r in rows if r["method"] == m and r["rate"] == rate]) for rate in rates]
        lines.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {mean_of(vals):.2f} |")
    return "\n".join(lines) + "\n"


def write_summary(rows: list[dict], metrics_shown=("logmel_db", *PERCEPTION, "two_sample_accuracy")) -> str:
    """Both axes side by side: one line per method, the mean over pieces and rates of each measure."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    shown = [m for m in metrics_shown if measured(rows, m)]
    lines = [
        "Distance and perception side by side (means over pieces and rates)",
        "",
        "| method | " + " | ".join(shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for m in methods:
        vals = [mean_of([r[k] for r in rows if r["method"] == m and k in r]) for k in shown]
        lines.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    rates = sorted({r["rate"] for r in rows})
    for metric in [m for m in METRICS + ("two_sample_accuracy",) if all(m in r for r in rows) and measured(rows, m)]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in methods:
            ax.plot(
                rates,
                [mean_of([r[metric] for r in rows if r["method"] == m and r["rate"] == rate]) for rate in rates],
                marker="o",
                label=m,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.set_xlabel("rate (speed)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{metric}.png", dpi=100)
        plt.close(fig)
        written.append(f"{metric}.png")
    for perception in ("visqol", "two_sample_accuracy"):  # the distortion-perception plane
        if not all(np.isfinite(r.get(perception, np.nan)) for r in rows):
            continue
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for m in methods:
            mine = [r for r in rows if r["method"] == m]
            ax.scatter(mean_of([r["logmel_db"] for r in mine]), mean_of([r[perception] for r in mine]), label=m)
            ax.annotate(
                m,
                (mean_of([r["logmel_db"] for r in mine]), mean_of([r[perception] for r in mine])),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel("log-mel distance to the truth (dB, lower is better)")
        ax.set_ylabel(perception + (" (higher is better)" if perception == "visqol" else " (0.5 is best)"))
        ax.set_title("distortion-perception plane (means over pieces and rates)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"plane_{perception}.png", dpi=100)
        plt.close(fig)
        written.append(f"plane_{perception}.png")
    return written


def recordings(args, models: dict) -> int:
    """Recorded music has no ground truth: score duration, pitch shift against the input, and
    log-mel distance to each classical stretcher's output."""

    from gan_stretch.data.teacher_corpora import AUDIO_EXTENSIONS
    from gan_stretch.io.audio import load

    files = sorted(p for p in Path(args.recordings).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    files = files[: args.pieces]
    if not files:
        raise SystemExit(f"error: no audio files under {args.recordings}")
    classical = [m for m in args.methods if m in teachers.TEACHERS]
    rates = args.rates or [0.5, 0.75, 1.25, 1.5, 2.0]
    rows = []
    for f in tqdm(files, desc="recordings", unit="file"):
        wave, sr = load(f)
        start = min(wave.shape[-1] // 3, max(0, wave.shape[-1] - int(args.seconds * sr)))
        x = wave[:, start : start + int(args.seconds * sr)]
        for rate in rates:
            refs = {m: teachers.get(m, exact_length=False)(x, sr, rate) for m in classical}
            outs = {**{n: s.stretch(x, sr, rate) for n, s in models.items()}, **refs}
            for name, y in outs.items():
                row = {
                    "piece": f.name,
                    "method": name,
                    "rate": rate,
                    "duration_error_ms": 1000 * metrics.duration_error(y, int(round(x.shape[-1] / rate)), sr),
                    "pitch_cents": metrics.pitch_shift_cents(y, x, sr),
                }
                for m, ref in refs.items():
                    row[f"logmel_to_{m}"] = metrics.log_mel_distance(y, ref, sr)
                rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "results.csv", rows)
    HOW.update({f"logmel_to_{m}": f"distance to {m}" for m in classical})
    tables = [
        write_table(rows, m) for m in ("pitch_cents", "duration_error_ms", *[f"logmel_to_{m}" for m in classical])
    ]
    (out / "table.md").write_text(
        f"# {out.name}: {len(files)} recordings from {args.recordings}, "
        f"{args.seconds:g} s excerpts\n\n" + "\n".join(tables)
    )
    print("\n".join(tables))
    return 0


BANDS = [f"band_{lo:g}_{hi:g}_db" for lo, hi in zip(nat.BAND_EDGES_HZ[:-1], nat.BAND_EDGES_HZ[1:])]
RECORDED_HOW = {  # beside naturalness and round_trip_db (eval/measures.py)
    "level_change_db": "output level against the input, dB; 0: kept",
    **{b: f"level change {b[5:-3].replace('_', '-')} Hz, dB; 0: kept" for b in BANDS},
}


def init_recorded(args) -> None:
    """Loads the models and the recordings corpus once per process."""
    _WORKER.update(args=args, models=load_models(args), corpus=Corpus(args.recordings))


def stretch_with(name: str, wave: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """``wave`` [C, N] stretched by a model of --model or a classical stretcher."""
    models = _WORKER["models"]
    if name in models:
        return models[name].stretch(wave, sr, rate)
    return teachers.get(name, exact_length=False)(wave, sr, rate)


def score_recording(item) -> tuple[list[dict], dict]:
    """Every method at every rate on one held-out excerpt (its channels kept): rows of results.csv
    and, per (method, rate), the naturalness patches of its output (and of the excerpt itself)."""
    args, corpus = _WORKER["args"], _WORKER["corpus"]
    x = corpus.load(item, 1.0, mono=False)
    sr = int(item.extra.get("sample_rate", corpus.sample_rate))
    group = corpus.recording(item)
    clips = {("input", 1.0): nat.Clip(group, *nat.patches(x, sr))}
    rows = []
    for rate in args.rates:
        heard = {}  # with --listen, for the first --listen-pieces excerpts: every output at this rate
        for name in [*_WORKER["models"], *args.methods]:
            t0 = time.perf_counter()
            y = stretch_with(name, x, sr, rate)
            elapsed = time.perf_counter() - t0
            back = stretch_with(name, y, sr, 1.0 / rate)
            bands = nat.band_level_change_db(y, x, sr)
            rows.append(
                {
                    "piece": item.id,
                    "recording": group,
                    "style": item.extra.get("style", ""),
                    "sample_rate": sr,
                    "method": name,
                    "rate": rate,
                    "duration_error_ms": 1000 * metrics.duration_error(y, int(round(x.shape[-1] / rate)), sr),
                    "pitch_cents": metrics.pitch_shift_cents(y, x, sr),
                    "round_trip_db": nat.round_trip_db(x, back, sr),
                    "level_change_db": float(10 * np.log10(np.mean(y**2) / max(np.mean(x**2), 1e-20))),
                    **dict(zip(BANDS, bands)),
                    "realtime_factor": elapsed / (x.shape[-1] / sr),
                }
            )
            clips[(name, rate)] = nat.Clip(group, *nat.patches(y, sr))
            if item.id in args.listen_ids:
                heard[name] = y
        if heard:  # no truth: the input at its own tempo is the page's reference
            listen.save_trial(args.out, item.id, rate, sr, x, None, heard)
    return rows, clips


def naturalness_test(job) -> dict:
    real, fake, seed = job
    return nat.two_sample_test(real, fake, seed=seed)


def recorded_items(args) -> list:
    """The held-out excerpts of ``args.recordings``: at most ``--pieces``, spread over the recordings
    (each one's first excerpts). Exits with an error on an empty set or an unknown method."""
    corpus = Corpus(args.recordings)
    items = corpus.split("heldout")
    if args.pieces:
        by_rec: dict[str, list] = {}
        for it in items:
            by_rec.setdefault(corpus.recording(it), []).append(it)
        items, k = [], 0
        while len(items) < min(args.pieces, sum(map(len, by_rec.values()))):
            items += [v[k] for v in by_rec.values() if k < len(v)][: args.pieces - len(items)]
            k += 1
    if not items:
        raise SystemExit(f"error: {args.recordings} has no held-out excerpts")
    for m in args.methods:
        if m not in teachers.TEACHERS:
            raise SystemExit(f"error: unknown method {m!r}")
    return items


def score_excerpts(args, items: list) -> tuple[list[dict], dict[tuple, list], dict[int, tuple], list[str]]:
    """Scores every excerpt in parallel: the rows in the excerpts' order, each (method, rate)'s
    clips, the results by excerpt index and the failures (one line each)."""
    rows, clips, failed = [], {}, []
    results = {}
    for i, result, error in parallel.imap(
        score_recording, items, args.jobs, desc="recordings", unit="excerpt", init=init_recorded, initargs=(args,)
    ):
        if error is not None:
            failed.append(f"{items[i].id}: {parallel.describe(error)}")
            tqdm.write(f"error: {failed[-1]}", file=sys.stderr)
        else:
            results[i] = result
    if not results:
        raise SystemExit(f"error: every excerpt failed (first: {failed[0]})")
    for i in sorted(results):
        rows += results[i][0]
        for key, clip in results[i][1].items():
            clips.setdefault(key, []).append(clip)
    return rows, clips, results, failed


def recorded_naturalness(args, rows: list[dict], clips: dict[tuple, list]) -> tuple[dict, list, list[dict]]:
    """The two-sample test of each (method, rate)'s clips against the input's, ``args.seeds`` seeds:
    the per-recording accuracies of each seed, the keys in the methods' order, and the rows of
    naturalness.csv. Adds each row's naturalness to ``rows``."""
    real = clips.pop(("input", 1.0))
    keys = sorted(clips, key=lambda k: (list(dict.fromkeys(r["method"] for r in rows)).index(k[0]), k[1]))
    jobs = [(real, clips[k], seed) for k in keys for seed in range(args.seeds)]
    per: dict[tuple, list[dict]] = {}
    for i, res, error in parallel.imap(naturalness_test, jobs, args.jobs, desc="naturalness", unit="test"):
        if error is not None:
            raise error
        per.setdefault(keys[i // args.seeds], []).append(res["per_group"])
    nat_rows = []
    for (m, r), runs in per.items():
        mean = validate_naturalness.seed_mean(runs)
        nat_rows += [{"method": m, "rate": r, "recording": g, "naturalness": a} for g, a in mean.items()]
        for row in rows:
            if row["method"] == m and row["rate"] == r:
                row["naturalness"] = mean.get(row["recording"], float("nan"))
    return per, keys, nat_rows


def naturalness_table(args, per: dict, keys: list) -> str:
    """The naturalness table: per recording first (each recording weighs the same, as in its
    intervals), paired against rubberband-r3 when it is among the methods."""
    reference = "rubberband-r3" if "rubberband-r3" in args.methods else None
    methods = list(dict.fromkeys(k[0] for k in keys))
    return (
        "\n".join(
            [
                f"naturalness ({HOW['naturalness']}; mean over recordings and {args.seeds} classifier seeds, "
                "95 % bootstrap intervals over recordings"
                + (", differences paired by recording)" if reference else ")"),
                "",
                *validate_naturalness.scores_table(per, methods, args.rates, reference),
                "",
                f"Smallest difference resolved against {reference}: "
                f"{validate_naturalness.resolution(per, methods, args.rates, reference):.3f}"
                if reference
                else "",
            ]
        )
        + "\n"
    )


def recorded_corpus(args) -> int:
    """The recorded-music family (``gan-stretch data recordings``): its held-out excerpts, every
    method and rate, scored without truth (naturalness, round trip, level per band, pitch,
    duration). Writes results.csv, naturalness.csv (per recording), table.md and plots."""
    items = recorded_items(args)
    args.rates = args.rates or [0.5, 0.75, 1.25, 1.5, 2.0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.listen_ids = {it.id for it in items[: args.listen_pieces]} if args.listen else set()
    if args.listen:
        listen.clear_clips(out)
    rows, clips, results, failed = score_excerpts(args, items)
    per, keys, nat_rows = recorded_naturalness(args, rows, clips)
    for name, table in (("results.csv", rows), ("naturalness.csv", nat_rows)):
        write_rows(out / name, table)
    HOW.update(RECORDED_HOW)
    shown = ("naturalness", "round_trip_db", "level_change_db", *BANDS, "pitch_cents", "duration_error_ms")
    tables = [naturalness_table(args, per, keys)] + [write_table(rows, m) for m in shown[1:] if measured(rows, m)]
    recordings_n = len({r["recording"] for r in rows})
    styles = sorted({r["style"] for r in rows})
    (out / "table.md").write_text(
        f"# {out.name}: {len(results)} held-out excerpts of {recordings_n} recordings ({', '.join(styles)}) "
        f"from {args.recordings}\n\n" + "\n".join(tables)
    )
    plots = plot_recorded(rows, nat_rows, out)
    (out / "config.json").write_text(
        json.dumps(
            {
                "command": " ".join(["eval/benchmark.py", *(sys.argv[1:])]),
                "recordings": args.recordings,
                "pieces": [items[i].id for i in sorted(results)],
                "models": args.model,
                "methods": args.methods,
                "rates": args.rates,
                "seeds": args.seeds,
                "plots": plots,
            },
            indent=1,
        )
    )
    print("\n".join(tables))
    if args.listen:
        print(f"listening page: {listen.build(out)}")
    if failed:
        print(f"{len(failed)} excerpt(s) failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def plot_recorded(rows: list[dict], nat_rows: list[dict], out: Path) -> list[str]:
    """naturalness against round trip per method (means over rates), and naturalness per rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    rates = sorted({r["rate"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for m in methods:
        acc = [mean_of(n["naturalness"] for n in nat_rows if n["method"] == m and n["rate"] == r) for r in rates]
        axes[0].plot(rates, acc, marker="o", label=m)
        rt = mean_of(r["round_trip_db"] for r in rows if r["method"] == m)
        axes[1].scatter(rt, mean_of(acc), s=40)
        axes[1].annotate(m, (rt, mean_of(acc)), fontsize=8, xytext=(3, 3), textcoords="offset points")
    axes[0].axhline(0.5, color="gray", lw=0.8, ls="--")
    axes[0].set(xscale="log", xlabel="rate", ylabel="naturalness (two-sample accuracy; 0.5 best)")
    axes[0].set_xticks(rates, [f"{r:g}" for r in rates])
    axes[0].legend(fontsize=7)
    axes[1].set(xlabel="round trip, log-mel dB (lower is better)", ylabel="naturalness, mean over rates")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("recorded music, held-out excerpts: no truth exists")
    fig.tight_layout()
    fig.savefig(out / "recorded.png", dpi=100)
    plt.close(fig)
    return ["recorded.png"]


def load_models(args) -> dict[str, Stretcher]:
    """Every ``--model NAME=PATH[@OPTIONS]`` as a Stretcher (PATH: a model file, or a packaged
    model's name: ``default``, ``mapper``)."""
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        path, _, opts = path.partition("@")  # NAME=PATH@griffin_lim=16,phase_lock=0,residual=0
        options = {
            "griffin_lim": args.griffin_lim,
            "phase_lock": args.phase_lock,
            "residual": args.residual,
            "transients": args.transients,
            "decays": None,
            "gap_ratio": None,
            "refine_attacks": None,
            "attack_span": None,
            "phase_floor_db": None,
            "dense_attacks": True,
            "stream": False,
            "block_frames": 16,
        }
        for opt in filter(None, opts.split(",")):
            key, _, value = opt.partition("=")
            if key not in options:
                raise SystemExit(f"error: unknown model option {key!r} in {spec!r} (use {', '.join(options)})")
            if key in ("griffin_lim", "block_frames"):
                options[key] = int(value)
            elif key in ("gap_ratio", "phase_floor_db"):
                options[key] = float(value)
            elif key == "attack_span":  # before:after, frames played at speed 1 around each onset
                options[key] = attack_span(value)  # as gan-stretch stretch --attack-span reads it
            elif key == "refine_attacks" and value == "auto":  # the default
                options[key] = None
            else:
                options[key] = value.lower() in ("1", "true", "yes")
        for key in ("transients", "decays"):  # None: as the model was trained
            options[key] = None if options[key] is None else bool(options[key])
        stream, block = options.pop("stream"), options.pop("block_frames")
        models[name] = Stretcher(load_model(resolve_checkpoint(path)), device=args.device, **options)
        if stream:  # NAME=PATH@stream=1[,block_frames=N]: the real-time mode, fed in chunks
            models[name] = Streamed(models[name], block)
    return models


class Streamed:
    """A Stretcher's real-time mode (:meth:`Stretcher.stream`) behind ``stretch(audio, sr, rate)``:
    the input fed in chunks of ``CHUNK`` samples, the outputs concatenated."""

    CHUNK = 1024

    def __init__(self, stretcher: Stretcher, block_frames: int = 16):
        self.stretcher, self.block_frames = stretcher, block_frames

    def __getattr__(self, name):  # the rest (spectral, model, ...) as the Stretcher's
        return getattr(self.stretcher, name)

    def stretch(self, audio: np.ndarray, sr: int, rate: float) -> np.ndarray:
        x = np.atleast_2d(audio)
        s = self.stretcher.stream(sr, x.shape[0], rate, self.block_frames)
        parts = [s.process(x[:, i : i + self.CHUNK]) for i in range(0, x.shape[1], self.CHUNK)]
        out = np.concatenate([*parts, s.finish()], axis=1)
        return out[0] if np.ndim(audio) == 1 else out


_WORKER: dict = {}  # per process: the settings, models and corpus of the pairs it scores


def init_worker(args) -> None:
    """Loads the models and the corpus once per process (a worker of --jobs, or this one)."""
    _WORKER.update(args=args, models=load_models(args), corpus=Corpus(args.data))


def score_pair(job) -> tuple[list[dict], dict]:
    """Every method on one (piece, rate): its rows of results.csv and, per method, its log-mel
    patches for the two-sample test; with --listen its clips are stored."""
    item, rate = job
    args, models, corpus = _WORKER["args"], _WORKER["models"], _WORKER["corpus"]
    sr, any_model = corpus.sample_rate, next(iter(models.values()), None)
    src, truth = corpus.load(item, 1.0), corpus.load(item, rate)
    onsets = corpus.onsets(item, rate)
    drums = corpus.onsets(item, rate, pitched=False)
    rows, patches, clips = [], {}, {}
    if args.two_sample:
        patches["truth"] = (item.id, rate, metrics.mel_patches(truth, sr))
    for name in list(models) + list(args.methods):
        t0 = time.perf_counter()
        if name in models:
            y = models[name].stretch(src, sr, rate)
        elif name in CEILINGS:
            if name == "ceiling-ae" and any_model is None:
                continue
            y = ceiling(
                name,
                any_model,
                (any_model.spectral if any_model else spectrum.SpectralConfig(sample_rate=sr)),
                src,
                truth,
                rate,
                args.griffin_lim,
                args.phase_lock,
            )
        else:
            y = teachers.get(name, exact_length=False)(src[None], sr, rate)[0]  # its own length
        elapsed = time.perf_counter() - t0
        rows.append(
            {
                "piece": item.id,
                "program": item.program,
                "method": name,
                "rate": rate,
                **score(y, src, truth, sr, elapsed, onsets, args.visqol, drums),
            }
        )
        if args.two_sample:
            patches[name] = (item.id, rate, metrics.mel_patches(y, sr))
        clips[name] = y
    if args.listen:
        listen.save_trial(args.out, item.id, rate, sr, src, truth, clips)
    return rows, patches


def two_sample(job) -> dict:
    """Per rate, the two-sample accuracy of one method's patches against the truth's."""
    return metrics.two_sample_accuracy(*job)["per_rate"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="true-tempo corpus folder")
    p.add_argument(
        "--recordings",
        help="instead of --data: a recordings corpus (gan-stretch data recordings; its held-out excerpts) "
        "or a folder of recorded music; scored without truth",
    )
    p.add_argument("--seeds", type=int, default=2, help="naturalness classifiers per method and rate (recordings)")
    p.add_argument("--seconds", type=float, default=15.0, help="excerpt length for --recordings")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH[@OPTIONS]",
        help="a model to score; OPTIONS override the pipeline for it, e.g. "
        "gan-plain=model.safetensors@griffin_lim=16,phase_lock=0,residual=0",
    )
    p.add_argument("--methods", nargs="*", default=["pv"], help="classical stretchers and ceilings")
    p.add_argument("--rates", type=float, nargs="+", default=None)
    p.add_argument("--pieces", type=int, default=8, help="held-out pieces to score")
    p.add_argument("--griffin-lim", type=int, default=1, help="phase refinement iterations of the models")
    p.add_argument("--phase-lock", action="store_true", help="models lock phases to peaks (Stretcher(phase_lock=True))")
    p.add_argument(
        "--no-residual",
        dest="residual",
        action="store_false",
        help="models decode their latents alone (Stretcher(residual=False))",
    )
    p.add_argument(
        "--transients",
        type=int,
        choices=(0, 1),
        default=None,
        help="models play attacks at speed 1 with a phase reset (Stretcher(transients=...); "
        "default: as each model was trained)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per process (torch, BLAS, numba; 1: the fastest on a busy machine, and the same numbers "
        "on any machine)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="(piece, rate) pairs scored at once, one process each (default: one per core with "
        "--device cpu, else 1); results.csv is the same for any number, except realtime_factor, "
        "which is timed while the other processes run (use --jobs 1 for speed figures)",
    )
    p.add_argument("--no-visqol", dest="visqol", action="store_false", help="skip ViSQOL (the slowest measure)")
    p.add_argument(
        "--no-two-sample", dest="two_sample", action="store_false", help="skip the two-sample classifier test"
    )
    p.add_argument(
        "--listen",
        action="store_true",
        help="store the input, the truth and every output under OUT/audio/ and write OUT/listen/ "
        "(with --recordings CORPUS: no truth exists, the input is the reference)",
    )
    p.add_argument(
        "--listen-pieces",
        type=int,
        default=4,
        help="with --recordings CORPUS --listen: store the clips of this many excerpts (the first scored)",
    )
    return p


def check(args) -> None:
    """Refuses arguments that cannot run (one line each); sets the thread count and the default --jobs."""
    torch.set_num_threads(max(1, args.threads))
    if bool(args.data) == bool(args.recordings):
        raise SystemExit("error: give --data (true-tempo corpus) or --recordings (folder of music)")
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"error: --jobs must be at least 1, got {args.jobs}")
    if args.jobs is None:
        args.jobs = parallel.default_jobs() if args.device == "cpu" else 1
    for m in args.methods if args.data else ():
        if m not in teachers.TEACHERS and m not in CEILINGS:
            raise SystemExit(f"error: unknown method {m!r}")


def score_recordings(args, models: dict) -> int:
    """--recordings: a recordings corpus (its held-out excerpts) or a folder of recorded music."""
    if (Path(args.recordings) / "manifest.json").is_file():
        if args.listen and args.listen_pieces < 1:
            raise SystemExit(f"error: --listen-pieces must be at least 1, got {args.listen_pieces}")
        return recorded_corpus(args)
    if args.listen:
        raise SystemExit(
            "error: --listen with --recordings needs a recordings corpus (gan-stretch data recordings), "
            f"not a folder of music: {args.recordings} has no manifest.json"
        )
    return recordings(args, models)


def score_pairs(args, jobs: list) -> tuple[list[dict], dict[str, list], list[str]]:
    """Every method on every (piece, rate) of ``jobs``, one process per pair (--jobs): the rows of
    results.csv in the order of ``jobs`` whatever order the pairs end in, per method the log-mel
    patches of the two-sample test, and a line per pair that failed."""
    threads = max(1, args.threads)
    results, failed = {}, []
    for i, result, error in parallel.imap(
        score_pair, jobs, args.jobs, desc="benchmark", unit="pair", init=init_worker, initargs=(args,), threads=threads
    ):
        if error is not None:
            failed.append(f"{jobs[i][0].id} at rate {jobs[i][1]:g}: {parallel.describe(error)}")
            tqdm.write(f"error: {failed[-1]}", file=sys.stderr)
        else:
            results[i] = result
    if not results:
        raise SystemExit(f"error: every pair failed (first: {failed[0]})")
    rows = [row for i in sorted(results) for row in results[i][0]]
    patches: dict[str, list] = {}  # method -> (piece, rate, log-mel patches) for the two-sample test
    for i in sorted(results):
        for name, patch in results[i][1].items():
            patches.setdefault(name, []).append(patch)
    return rows, patches, failed


def add_two_sample(args, rows: list[dict], patches: dict[str, list]) -> None:
    """One fresh classifier per method (never the training discriminator); its held-out accuracy
    per rate goes on every row of that method and rate (two_sample_accuracy)."""
    names = [m for m in patches if m != "truth"]
    for i, acc, error in parallel.imap(
        two_sample,
        [(patches[n], patches["truth"]) for n in names],
        args.jobs,
        desc="two-sample tests",
        unit="method",
        threads=max(1, args.threads),
    ):
        if error is not None:
            raise error
        for r in rows:
            if r["method"] == names[i]:
                r["two_sample_accuracy"] = acc.get(r["rate"], float("nan"))


def tables(rows: list[dict], title: str) -> str:
    """table.md: both axes side by side, then one table per measure (methods x rates)."""
    table = write_summary(rows) + "\n" + write_table(rows)
    shown = [m for m in (*PERCEPTION, "two_sample_accuracy") if measured(rows, m)]
    extra = "\n".join(write_table(rows, m) for m in (*shown, "pitch_cents", "duration_error_ms", "realtime_factor"))
    return f"# {title}\n\n{table}\n{extra}"


def write_results(args, argv, out: Path, rows: list[dict], items: list, models: dict) -> list[str]:
    """results.csv, table.md, the plots and config.json (the exact command and inputs); returns the plots."""
    write_rows(out / "results.csv", rows)
    (out / "table.md").write_text(tables(rows, f"{out.name}: {len(items)} held-out pieces of {args.data}"))
    plots = plot(rows, out)
    (out / "config.json").write_text(
        json.dumps(
            {
                "command": " ".join([sys.executable, *sys.argv])
                if argv is None
                else " ".join(["eval/benchmark.py", *argv]),
                "data": args.data,
                "pieces": [i.id for i in items],
                "models": args.model,
                "methods": args.methods,
                "griffin_lim": args.griffin_lim,
                "phase_lock": args.phase_lock,
                "residual": args.residual,
                "transients": args.transients,
                "plots": plots,
                "visqol": args.visqol,
                "two_sample": args.two_sample,
                "model_meta": {n: s.model.meta for n, s in models.items()},
            },
            indent=1,
            default=str,
        )
    )
    return plots


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    check(args)
    models = load_models(args)
    if args.recordings:
        return score_recordings(args, models)
    corpus = Corpus(args.data)
    items = corpus.split("heldout")[: args.pieces]
    if not items:
        raise SystemExit(f"error: {args.data} has no held-out items")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.listen:
        listen.clear_clips(out)
    jobs = [(item, rate) for item in items for rate in (args.rates or corpus.rates(item))]
    rows, patches, failed = score_pairs(args, jobs)
    if args.two_sample and len(items) >= 2:
        add_two_sample(args, rows, patches)
    plots = write_results(args, argv, out, rows, items, models)
    print(write_summary(rows) + "\n" + write_table(rows))
    print(f"wrote {out}/table.md, results.csv, {len(plots)} plots")
    if args.listen:
        print(f"listening page: {listen.build(out)}")
    if failed:
        print(
            f"{len(failed)} of {len(jobs)} pair(s) failed, left out of the results: " + "; ".join(failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
