"""Ablations from one command: train every variant, then score all of them in one benchmark.

    python eval/ablations.py --data data/true-tempo --out results/ablations [--steps-scale 1.0] [--accelerate-config ...]

Variants (each a run under --runs, trained with the shipped recipes plus overrides):
  interpolation     the autoencoder alone: latents interpolated in time, no mapper, no generator
  mapper            the supervised 2-layer mapper baseline
  gan-no-adv        the generator with its supervised terms only (adv_weight=0, fm_weight=0)
  gan               the full GAN
  gan-teacher       the full GAN trained on phase-vocoder targets of the same inputs, not true-tempo ones
  gan-natural-d     the discriminator sees any natural music as real (unpaired), not the true stretch
  gan-latent64      the full GAN on an autoencoder with 64 latent channels instead of 128
plus the ceilings (true magnitudes through our phase reconstruction; the true stretched audio
through the autoencoder), plain magnitude interpolation, and librosa's phase vocoder.
A rerun reuses finished runs (each resumes from its checkpoint).
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="true-tempo corpus")
    p.add_argument("--out", default="results/ablations")
    p.add_argument("--runs", default="runs/ablations")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every recipe's steps")
    p.add_argument("--pieces", type=int, default=8)
    p.add_argument("--accelerate-config", default=str(ROOT / "recipes/accelerate/cpu.yaml"))
    p.add_argument("--extra", default="", help="overrides added to every run, e.g. 'batch_size=16'")
    args = p.parse_args(argv)
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []

    def sh(cmd: list[str]) -> None:
        commands.append(shlex.join(cmd))
        print("$", commands[-1], flush=True)
        subprocess.run(cmd, check=True)

    def train(recipe: str, run: str, *overrides: str) -> str:
        steps = {"autoencoder": 3000, "mapper": 1000, "gan": 1200}[recipe]
        sh([sys.executable, "-m", "accelerate.commands.launch", "--config_file", args.accelerate_config,
            "-m", "gan_stretch.train", str(ROOT / f"recipes/{recipe}.yaml"), f"run_dir={runs / run}",
            f"steps={max(1, int(steps * args.steps_scale))}", "eval_pieces=0", *overrides, *args.extra.split()])
        return str(runs / run / "model.safetensors")

    data = args.data
    teacher = str(Path(data).with_name(Path(data).name + "-pv-teacher"))
    sh([sys.executable, "-c", "import sys; from gan_stretch.data.corpus import teacher_from_corpus as t; "
        "t(sys.argv[1], sys.argv[2], 'pv')", data, teacher])

    small_gan = ["channels=64", "d_channels=64", "batch_size=16", "warmup_steps=200"]
    ae = train("autoencoder", "autoencoder", f"data={data}")
    ae64 = train("autoencoder", "autoencoder-latent64", f"data={data}", "latent=64")
    models = {"interpolation": ae,
              "mapper": train("mapper", "mapper", f"data={data}", f"autoencoder={ae}"),
              "gan-no-adv": train("gan", "gan-no-adv", f"data={data}", f"autoencoder={ae}", "adv_weight=0",
                                  "fm_weight=0", *small_gan),
              "gan": train("gan", "gan", f"data={data}", f"autoencoder={ae}", *small_gan),
              "gan-teacher": train("gan", "gan-teacher", f"data={teacher}", f"autoencoder={ae}", *small_gan),
              "gan-natural-d": train("gan", "gan-natural-d", f"data={data}", f"autoencoder={ae}", "real=natural",
                                     *small_gan),
              "gan-latent64": train("gan", "gan-latent64", f"data={data}", f"autoencoder={ae64}", *small_gan)}
    bench = [sys.executable, str(ROOT / "eval/benchmark.py"), "--data", data, "--out", str(out),
             "--pieces", str(args.pieces), "--methods", "pv", "ceiling-phase", "ceiling-ae", "interp-magnitude"]
    for name, path in models.items():
        bench += ["--model", f"{name}={path}"]
    sh(bench)
    (out / "commands.txt").write_text("\n".join(commands) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
