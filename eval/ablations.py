"""Ablations from one command: train every variant, then score all of them in one benchmark.

    python eval/ablations.py --data data/true-tempo --out results/ablations [--steps-scale 1.0] [--accelerate-config ...]

Variants (each a recipe file, trained as a run under --runs on --data, or on its phase-vocoder
teacher for gan-teacher; only the corpus, run and autoencoder paths and the step count are set here):
  interpolation     recipes/default/autoencoder.yaml             the autoencoder alone: latents interpolated
                                                                 in time, no mapper, no generator
  mapper            recipes/default/mapper.yaml                  the supervised 2-layer mapper baseline
  gan-no-adv        recipes/ablations/gan-no-adv.yaml            the generator with its supervised terms only
  gan               recipes/default/gan.yaml                     the full GAN (the packaged model's recipe)
  gan-teacher       recipes/ablations/gan-teacher.yaml           trained on phase-vocoder targets of the same
                                                                 inputs, not true-tempo ones
  gan-natural-d     recipes/ablations/gan-natural-d.yaml         the discriminator sees any natural music as
                                                                 real (unpaired), not the true stretch
  gan-latent64      recipes/ablations/gan-latent64.yaml          the full GAN on an autoencoder with 64 latent
                    (on recipes/ablations/autoencoder-latent64.yaml)  channels instead of 128
plus the ceilings (true magnitudes through our phase reconstruction; the true stretched audio
through the autoencoder), plain magnitude interpolation, and librosa's phase vocoder.
A rerun reuses finished runs (each resumes from its checkpoint). ``--jobs N`` scores the pairs and
makes the teacher targets in N processes (default: one per core); the training runs stay one after
another: each already uses every core, and running them side by side would change their thread
counts and so their floats.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from gan_stretch.train.recipes import read_recipe_file

from launch import train_command  # eval/launch.py, beside this script

ROOT = Path(__file__).resolve().parent.parent

AUTOENCODERS = {
    "autoencoder": "recipes/default/autoencoder.yaml",
    "autoencoder-latent64": "recipes/ablations/autoencoder-latent64.yaml",
}
# name: (recipe file, the autoencoder run it builds on, trained on the phase-vocoder teacher)
VARIANTS = {
    "mapper": ("recipes/default/mapper.yaml", "autoencoder", False),
    "gan-no-adv": ("recipes/ablations/gan-no-adv.yaml", "autoencoder", False),
    "gan": ("recipes/default/gan.yaml", "autoencoder", False),
    "gan-teacher": ("recipes/ablations/gan-teacher.yaml", "autoencoder", True),
    "gan-natural-d": ("recipes/ablations/gan-natural-d.yaml", "autoencoder", False),
    "gan-latent64": ("recipes/ablations/gan-latent64.yaml", "autoencoder-latent64", False),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="true-tempo corpus")
    p.add_argument("--out", default="results/ablations")
    p.add_argument("--runs", default="runs/ablations")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every recipe's steps")
    p.add_argument("--pieces", type=int, default=8)
    p.add_argument("--accelerate-config", default=str(ROOT / "recipes/accelerate/cpu.yaml"))
    p.add_argument("--extra", default="", help="overrides added to every run, e.g. 'batch_size=16'")
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="processes for the teacher targets and the benchmark (default: one per core)",
    )
    args = p.parse_args(argv)
    jobs = [] if args.jobs is None else ["--jobs", str(args.jobs)]
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []

    def sh(cmd: list[str]) -> None:
        commands.append(shlex.join(cmd))
        print("$", commands[-1], flush=True)
        subprocess.run(cmd, check=True)

    def train(recipe: str, run: str, data: str, *paths: str) -> str:
        steps = read_recipe_file(ROOT / recipe)["steps"]
        sh(
            train_command(
                args.accelerate_config,
                str(ROOT / recipe),
                f"data={data}",
                f"run_dir={runs / run}",
                *paths,
                f"steps={max(1, int(steps * args.steps_scale))}",
                "eval_pieces=0",
                *args.extra.split(),
            )
        )
        return str(runs / run / "model.safetensors")

    data = args.data
    teacher = str(Path(data).with_name(Path(data).name + "-pv-teacher"))
    sh(
        [
            sys.executable,
            "-c",
            "import sys; from gan_stretch.data.teacher_corpora import teacher_from_corpus as t; "
            "t(sys.argv[1], sys.argv[2], 'pv', jobs=int(sys.argv[3]) if len(sys.argv) > 3 else None)",
            data,
            teacher,
            *([str(args.jobs)] if args.jobs else []),
        ]
    )

    autoencoders = {name: train(recipe, name, data) for name, recipe in AUTOENCODERS.items()}
    models = {"interpolation": autoencoders["autoencoder"]}
    for name, (recipe, ae, on_teacher) in VARIANTS.items():
        models[name] = train(recipe, name, teacher if on_teacher else data, f"autoencoder={autoencoders[ae]}")
    bench = [
        sys.executable,
        str(ROOT / "eval/benchmark.py"),
        "--data",
        data,
        "--out",
        str(out),
        "--pieces",
        str(args.pieces),
        "--methods",
        "pv",
        "ceiling-phase",
        "ceiling-ae",
        "interp-magnitude",
        *jobs,
    ]
    for name, path in models.items():
        bench += ["--model", f"{name}={path}"]
    sh(bench)
    (out / "commands.txt").write_text("\n".join(commands) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
