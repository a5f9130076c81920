"""Can a recordings discriminator see what a stretch changes at all? Trained alone, on the frames a
stretch starts from, before it is asked to teach a generator anything.

    python eval/discriminator_probe.py --recordings data/recordings \\
        --autoencoder gan_stretch/checkpoints/default.safetensors --out docs/results/recorded-adversarial/probe

For each discriminator (the latent one, the spectrogram one without and with the frame-to-frame
change plane): real = windows of training-split recordings at their own tempo, fake = windows of
*other* training-split recordings time-scaled as the Stretcher reads them (the cached input of the
generator's fakes: latents, or dB frames with the decays' level change), each at a rate drawn from
the training pairs' rates, with the real windows given the fakes' rates (the draw of
:meth:`gan_stretch.data.cache.RecordingLatents.sample`, as in training). The recipe's sizes,
window, batch and d_lr; LSGAN and Adam as in training.
Every ``--every`` steps: the share of held-out draws (another random stream, 64 windows a side)
told apart (score above 0.5 for real, below for fake), overall and per rate. A discriminator that
stays at 0.5 here has nothing to teach on recordings: the generator's stretch starts from these
frames and changes them only a little. Writes probe.csv (one row per discriminator, step and rate)
and probe.md.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from eval.results import write_rows
from gan_stretch.data.cache import file_digest, recording_cache
from gan_stretch.data.manifest import Corpus
from gan_stretch.models.model_file import load_model
from gan_stretch.train.gan import ADAM_BETAS, lsgan_d, recordings_discriminator, score_maps
from gan_stretch.train.recipes import load_recipe

RATES = (0.5, 0.75, 1.25, 1.5, 2.0)  # the rates of the recipes' training pairs (data/train/timgm)
PROBES = {  # name -> the recipe's recordings discriminator settings (view, change plane, relative to the window)
    "latent": {"rec_view": "latent", "rec_delta": 0.0},
    "spectrogram": {"rec_view": "spectrogram", "rec_delta": 0.0},
    "spectrogram+change": {"rec_view": "spectrogram", "rec_delta": 10.0},
    "spectrogram+change, relative": {"rec_view": "spectrogram", "rec_delta": 10.0, "rec_relative": True},
}


def build(recipe, settings: dict, model) -> torch.nn.Module:
    """The recordings discriminator ``recipe`` builds with ``settings`` (a PROBES entry)."""
    chosen = copy.copy(recipe)
    for key, value in {"rec_relative": False, **settings}.items():
        setattr(chosen, key, value)
    return recordings_discriminator(chosen, model.spectral, model.autoencoder.cfg.latent_dim)


def scores(d: torch.nn.Module, x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Each window's mean score (over positions and, for the spectrogram one, its two views)."""
    found = score_maps(d(x, rate)[0])
    return sum(m.flatten(1).mean(1) for m in found) / len(found)


def probe(recs, recipe, settings: dict, model, steps: int, every: int, seed: int) -> list[dict]:
    """Trains one discriminator (``settings``: a PROBES entry): rows (step, rate or 'all', held-out
    share told apart, D(real), D(fake))."""
    torch.manual_seed(seed)
    d = build(recipe, settings, model)
    opt = torch.optim.Adam(d.parameters(), lr=recipe.d_lr, betas=ADAM_BETAS)
    latent = settings["rec_view"] == "latent"
    real_x, fake_x = (recs.real, recs.source) if latent else (recs.real_db, recs.source_db)
    draw = lambda rng, n: recs.sample(rng, n, recipe.window)  # noqa: E731
    train_rng, rows = np.random.default_rng(seed), []
    for step in range(steps + 1):
        if step % every == 0:
            held = np.random.default_rng([seed, 99])
            with torch.no_grad():
                a_all, b_all, r_all = [], [], []
                for _ in range(4):  # 4 draws of 64 windows a side
                    real, fake, rate = draw(held, 64)
                    a_all.append(scores(d, real_x[real].float(), rate))
                    b_all.append(scores(d, fake_x[fake].float(), rate))
                    r_all.append(rate)
                a, b, rate = torch.cat(a_all), torch.cat(b_all), torch.cat(r_all)
            for q in [None, *sorted(set(rate.tolist()))]:
                m = torch.ones_like(rate, dtype=torch.bool) if q is None else rate == q
                told = ((a[m] > 0.5).float().mean() + (b[m] < 0.5).float().mean()) / 2
                rows.append(
                    {
                        "step": step,
                        "rate": "all" if q is None else q,
                        "told_apart": round(float(told), 4),
                        "d_real": round(float(a[m].mean()), 4),
                        "d_fake": round(float(b[m].mean()), 4),
                    }
                )
            print(f"{settings} step {step}: told apart {rows[-len(set(rate.tolist())) - 1]['told_apart']:.3f}")
        if step == steps:
            break
        real, fake, rate = draw(train_rng, recipe.rec_batch)
        loss = lsgan_d(score_maps(d(real_x[real].float(), rate)[0]), score_maps(d(fake_x[fake].float(), rate)[0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rows


def page(rows: list[dict], command: str) -> str:
    lines = [
        "# What a recordings discriminator can see (trained alone on the frames a stretch starts from)",
        "",
        f"`{command}`",
        "",
        "Held-out share of windows told apart (0.5: chance; 64 windows a side, 4 draws), at the last step:",
        "",
    ]
    rates = sorted({r["rate"] for r in rows if r["rate"] != "all"})
    lines += [
        "| discriminator | all | " + " | ".join(f"{q:g}" for q in rates) + " |",
        "|---|---|" + "---|" * len(rates),
    ]
    for name in dict.fromkeys(r["probe"] for r in rows):
        mine = [r for r in rows if r["probe"] == name]
        last = max(r["step"] for r in mine)
        at = {r["rate"]: r["told_apart"] for r in mine if r["step"] == last}
        lines.append(
            f"| {name} | {at['all']:.3f} | " + " | ".join(f"{at.get(q, float('nan')):.3f}" for q in rates) + " |"
        )
    lines += [
        "",
        "As training goes (all rates):",
        "",
        "| step | " + " | ".join(dict.fromkeys(r["probe"] for r in rows)) + " |",
    ]
    names = list(dict.fromkeys(r["probe"] for r in rows))
    lines.append("|---|" + "---|" * len(names))
    for step in sorted({r["step"] for r in rows}):
        cells = [
            next(
                (
                    f"{r['told_apart']:.3f}"
                    for r in rows
                    if r["probe"] == n and r["step"] == step and r["rate"] == "all"
                ),
                "",
            )
            for n in names
        ]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recordings", required=True, help="a recordings corpus (gan-stretch data recordings)")
    p.add_argument("--autoencoder", required=True, help="the frozen autoencoder (any model file holding one)")
    p.add_argument("--out", required=True)
    p.add_argument("--probes", nargs="+", default=list(PROBES), choices=list(PROBES))
    p.add_argument(
        "--recipe", default="recipes/ablations/gan-recorded.yaml", help="sizes, d_lr, window, rec_batch, plan"
    )
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    given = [f"autoencoder={args.autoencoder}", f"recordings={args.recordings}", "run_dir=runs/probe", "data=unused"]
    recipe = load_recipe(Path(__file__).resolve().parents[1] / args.recipe, given)
    model = load_model(args.autoencoder)
    recs = recording_cache(
        Corpus(args.recordings),
        model,
        file_digest(args.autoencoder),
        RATES,
        transients=recipe.transients,
        span=tuple(recipe.attack_span),
        frames=True,
        decays=recipe.decays,
    )
    rows = []
    for name in args.probes:
        found = probe(recs, recipe, PROBES[name], model, args.steps, args.every, args.seed)
        rows += [{"probe": name, **r} for r in found]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "probe.csv", rows)
    command = "python eval/discriminator_probe.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    (out / "probe.md").write_text(page(rows, command))
    print(page(rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
