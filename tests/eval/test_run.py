"""eval/run.py: a grid (YAML) trained, scored and reported by one command, with scores reused
only for the model file and settings they were made of; the grids of recipes/grids/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from eval import run
from eval.measures import COMPARED

ROOT = Path(__file__).resolve().parents[2]


def write_scores(folder: Path, methods: list[str], rng, measures=COMPARED, rates=(0.5, 2.0), pieces=6) -> None:
    """A results.csv as eval/benchmark.py writes it: one row per piece, method and rate."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["piece", "method", "rate", *measures])
        w.writeheader()
        for m in methods:
            for piece in range(pieces):
                for rate in rates:
                    w.writerow({"piece": f"p{piece}", "method": m, "rate": rate, **{k: rng.normal() for k in measures}})


def write_grid(path: Path, **grid) -> Path:
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def study_grid(tmp_path: Path, variants: dict, **more) -> Path:
    grid = {
        "report": "study",
        "out": str(tmp_path / "out"),
        "runs": str(tmp_path / "runs"),
        "seeds": [0],
        "eval": {"setA": "data/setA"},
        "benchmark": ["--pieces", 8],
        "references": {"classical": ["wsola", "rubberband-r3"]},
        "models": {"autoencoder": "ae.safetensors"},
        "train": {"overrides": ["eval_pieces=0"]},
        "variants": variants,
        "pairs": [["gan", "gan-no-adv"], ["gan", "mapper"]],
        **more,
    }
    return write_grid(tmp_path / "grid.yaml", **grid)


VARIANTS = {
    name: {"recipe": recipe, "overrides": ["autoencoder={autoencoder}"]}
    for name, recipe in (
        ("mapper", "recipes/default/mapper.yaml"),
        ("gan-no-adv", "recipes/ablations/gan-no-adv.yaml"),
        ("gan", "recipes/default/gan.yaml"),
    )
}


def test_report_from_scores_already_on_disk_from_another_folder(tmp_path):
    """--report-only, run as a script from another folder: the study's page comes from the
    benchmark folders under OUT/scores; nothing is trained or scored."""
    rng = np.random.default_rng(1)
    variants = {**VARIANTS, "gan-latent-d": {"recipe": "recipes/ablations/gan-latent-d.yaml", "seeds": [0]}}
    grid = study_grid(tmp_path, variants, pairs=[["gan", "gan-no-adv"], ["gan-latent-d", "gan-no-adv"]])
    for name in ("mapper-s0", "gan-no-adv-s0", "gan-s0", "gan-latent-d-s0"):
        write_scores(tmp_path / "out" / "scores" / "setA" / name, [name], rng)
    write_scores(tmp_path / "out" / "scores" / "setA" / "classical", ["wsola", "rubberband-r3"], rng)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "run.py"), str(grid), "--report-only"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out" / "study.md").read_text()
    assert text.startswith("# The adversarial study (setA; seeds 0)")
    assert "## gan vs gan-no-adv" in text and "## gan-latent-d vs gan-no-adv" in text
    assert "| wsola |" in text and "| gan-s0 |" in text and "| gan-latent-d-s0 |" in text
    rows = list(csv.DictReader(open(tmp_path / "out" / "paired.csv")))
    assert {r["measure"] for r in rows} == set(COMPARED)
    assert not (tmp_path / "out" / "commands.txt").exists() and not list(elsewhere.iterdir())


def test_grid_errors_name_the_problem(tmp_path):
    for grid, message in (
        ({"report": "study", "out": "o", "eval": {"a": "b"}}, "no 'variants'"),
        ({"report": "nope", "out": "o", "eval": {"a": "b"}, "variants": VARIANTS}, "report 'nope' is none of"),
        ({"report": "study", "out": "o", "eval": {"a": "b"}, "variants": VARIANTS, "speed": 1}, "unknown key(s) speed"),
        ({"report": "study", "out": "o", "eval": {"a": "b"}, "variants": {"x": {"recipe": "no.yaml"}}}, "not found"),
        ({"report": "study", "out": "o", "eval": {"a": "b"}, "variants": VARIANTS, "pairs": [["gan", "x"]]}, "pair"),
    ):
        with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
            run.load_grid(write_grid(tmp_path / "g.yaml", **grid))


def test_dry_run_lists_training_and_scoring_and_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: pytest.fail("a dry run started a command"))
    grid = study_grid(tmp_path, VARIANTS)
    assert run.main([str(grid), "--dry-run"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    trains = [line for line in printed if "gan_stretch.train" in line]
    assert len(trains) == 3 and all("autoencoder=ae.safetensors" in t and "seed=0" in t for t in trains)
    benchmarks = [line for line in printed if "eval/benchmark.py" in line]
    assert len(benchmarks) == 4 and "--methods wsola rubberband-r3" in benchmarks[0]
    assert all(f"--model {v}-s0=" in b for v, b in zip(VARIANTS, benchmarks[1:]))  # scored once trained
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_scores_are_reused_only_for_the_same_model_file_and_variant_settings(tmp_path, monkeypatch, tiny_model):
    """--no-train on finished runs: each model is benchmarked once; a rerun reuses its scores;
    after a variant's recipe is edited, its model (trained with the old settings) is not scored
    and its old scores are not reported; retrained (a new model file), it is scored anew."""
    from gan_stretch.io import checkpoint
    from gan_stretch.train.recipes import load_recipe, recipe_source

    runs, out = tmp_path / "runs", tmp_path / "out"
    recipes, variants = {}, {}
    for name, v in VARIANTS.items():
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(f"base: {ROOT / v['recipe']}\n")
        variants[name] = {**v, "recipe": str(recipes[name])}
    grid = study_grid(tmp_path, variants)
    tensors, meta = checkpoint.load(tiny_model)

    def finish(name: str, weight: float = 0.0) -> None:
        """A finished run of variant ``name`` in seed 0, as the grid would train it."""
        run_dir = runs / f"{name}-s0"
        given = [f"run_dir={run_dir}", "eval_pieces=0", "autoencoder=ae.safetensors", "seed=0"]
        recipe = load_recipe(recipes[name], given)
        model = {**tensors, "refiner.outp.bias": tensors["refiner.outp.bias"] + weight}
        checkpoint.save(run_dir / "model.safetensors", model, {**meta, "recipe": recipe_source(recipe)})
        state = {
            "kind": "training-state",
            "stage": recipe.stage,
            "step": recipe.steps,
            "recipe": {"steps": recipe.steps},
        }
        checkpoint.save(run_dir / "checkpoints" / "last.safetensors", {"x": torch.zeros(1)}, state)

    scored = []

    def benchmark(cmd, check, cwd):  # a stub of eval/benchmark.py: writes its results.csv for the methods asked
        assert cwd == run.ROOT and "gan_stretch.train" not in cmd
        res = Path(cmd[cmd.index("--out") + 1])
        methods = cmd[cmd.index("--methods") + 1 :] or [cmd[cmd.index("--model") + 1].split("=")[0]]
        scored.append(res.name)
        write_scores(res, methods, np.random.default_rng(0), measures=("logmel_db",), rates=(0.5,), pieces=5)

    monkeypatch.setattr(run.subprocess, "run", benchmark)
    argv = [str(grid), "--no-train"]
    for name in recipes:
        finish(name)
    assert run.main(argv) == 0 and sorted(scored) == ["classical", "gan-no-adv-s0", "gan-s0", "mapper-s0"]
    assert "eval/benchmark.py --data data/setA" in (out / "commands.txt").read_text()
    scored.clear()
    assert run.main(argv) == 0 and scored == []  # every score reused
    recipes["gan"].write_text(recipes["gan"].read_text() + "lr: 1.0e-4\n")  # the variant is edited ...
    assert run.main(argv) == 0 and scored == []  # ... its model is now stale: not scored, not reported
    assert "| gan-s0 |" not in (out / "study.md").read_text() and "| mapper-s0 |" in (out / "study.md").read_text()
    finish("gan", weight=0.1)  # ... and retrained
    assert run.main(argv) == 0 and scored == ["gan-s0"]
    scored.clear()
    finish("mapper", weight=0.2)  # a new model file under the same settings is scored anew too
    assert run.main(argv) == 0 and scored == ["mapper-s0"]


def test_ablations_grid_trains_recipe_files_with_path_overrides_only(monkeypatch, capsys):
    """recipes/grids/ablations.yaml names a recipe file for every variant and sets only the corpus,
    run and autoencoder paths; the latent64 GAN runs on the latent64 autoencoder, the teacher
    variant on the phase-vocoder teacher's corpus, made first."""
    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: pytest.fail("a dry run started a command"))
    assert run.main([str(ROOT / "recipes/grids/ablations.yaml"), "--dry-run"]) == 0
    printed = [line[2:].split() for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    trains = {
        c[c.index("gan_stretch.train") + 1]: c[c.index("gan_stretch.train") + 2 :]
        for c in printed
        if "gan_stretch.train" in c
    }
    assert sorted(Path(r).relative_to(ROOT / "recipes").as_posix() for r in trains) == sorted(
        [
            "default/autoencoder.yaml",
            "default/mapper.yaml",
            "default/gan.yaml",
            "ablations/gan-no-adv.yaml",
            "ablations/gan-teacher.yaml",
            "ablations/gan-natural-d.yaml",
            "ablations/autoencoder-latent64.yaml",
            "ablations/gan-latent64.yaml",
        ]
    )
    for recipe, args in trains.items():
        assert {a.split("=", 1)[0] for a in args} <= {"data", "run_dir", "autoencoder", "eval_pieces"}, (recipe, args)
    latent64 = trains[str(ROOT / "recipes/ablations/gan-latent64.yaml")]
    assert "autoencoder=runs/ablations/autoencoder-latent64/model.safetensors" in latent64
    teacher = next(c for c in printed if "teacher_from_corpus" in " ".join(c))
    assert printed.index(teacher) < printed.index(next(c for c in printed if "gan-teacher.yaml" in " ".join(c)))
    assert "data=data/train/timgm-pv-teacher" in trains[str(ROOT / "recipes/ablations/gan-teacher.yaml")]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "recipes" / "grids").glob("*.yaml")))
def test_every_grid_of_the_project_loads(name):
    grid = run.load_grid(ROOT / "recipes" / "grids" / f"{name}.yaml")
    assert run.plan(grid)


def test_table_and_seeds_reports_from_one_benchmark_per_set(tmp_path):
    """together: one benchmark folder per set (OUT/scores/<set>/); the table report is eval/benchmark.py's
    tables of every method, the seeds report eval/seeds.py's page of each pair."""
    from eval.benchmark import tables
    from eval.results import read_rows
    from eval.seeds import page

    rng = np.random.default_rng(2)
    for name in ("setA", "setB"):
        methods, measures = (
            ["pv", "a-s0", "a-s1", "b-s0", "b-s1"],
            (*COMPARED, "pitch_cents", "duration_error_ms", "realtime_factor"),
        )
        write_scores(tmp_path / "out" / "scores" / name, methods, rng, measures)
    variants = {v: {"recipe": "recipes/default/generator.yaml"} for v in ("a", "b")}
    common = {
        "out": str(tmp_path / "out"),
        "seeds": [0, 1],
        "together": True,
        "eval": {"setA": "data/A", "setB": "data/B"},
        "references": {"classical": ["pv"]},
        "variants": variants,
    }
    grid = write_grid(tmp_path / "t.yaml", report="table", title="t", page=str(tmp_path / "t.md"), **common)
    assert run.main([str(grid), "--report-only"]) == 0
    sets = {n: read_rows(tmp_path / "out" / "scores" / n / "results.csv", set=n) for n in ("setA", "setB")}
    assert (tmp_path / "t.md").read_text() == tables(sets["setA"], "t: 6 held-out pieces of data/A") + tables(
        sets["setB"], "t: 6 held-out pieces of data/B"
    )
    page_path = str(tmp_path / "s.md")
    grid = write_grid(
        tmp_path / "s.yaml", report="seeds", page=page_path, pairs=[["a", "b"]], measures=["visqol"], **common
    )
    assert run.main([str(grid), "--report-only"]) == 0
    text = (tmp_path / "s.md").read_text()
    assert text == page(sets, [("a", "b")], ["visqol"]) and "| setB |" in text and "higher is better" in text
