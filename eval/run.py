"""Run a grid: train every variant and seed that is missing, score every model not yet scored, write the report.

    python -m eval.run recipes/grids/adversarial.yaml [--dry-run] [--no-train] [--report-only] [-j N]
    python /path/to/eval/run.py recipes/grids/ablations.yaml        (the same, from any folder)

A grid (YAML, under recipes/grids/) declares one study; its paths are relative to the project root:
  report      study (the paired tables of eval/study.py: OUT/study.md, OUT/paired.csv),
              seeds (eval/seeds.py's tables of each pair over every set: PAGE) or
              table (eval/benchmark.py's tables of every model on each set: PAGE)
  out         the study's folder (its scores and commands.txt); page: the report's file (seeds, table);
              scores: the scores' folder (default OUT/scores)
  runs        the training runs' folder (one run per variant and seed: RUNS/<variant>-s<seed>)
  seeds       the seeds of every variant (a variant may list its own; none: runs named <variant>)
  eval        {set name: true-tempo corpus}; each set's scores go to OUT/scores/<set>/<model>/
              (together: true: one benchmark of every model per set, in OUT/scores/<set>/)
  benchmark   eval/benchmark.py's arguments for every score (e.g. [--pieces, 8])
  references  {name: [methods]}: classical stretchers and ceilings scored beside the models
  models      {name: model file}: trained elsewhere, used by overrides as {name}, never trained
  train       accelerate_config (default recipes/accelerate/cpu.yaml), data (the training corpus),
              overrides (given to every run)
  variants    {name: {recipe, overrides, seeds, teacher, score}}: overrides may name a model or an
              unseeded variant as {name} (its model file); teacher: pv trains on that teacher's
              stretches of train.data; score: false trains it without scoring it, or a name to score it under
  pairs       [[a, b], ...]: the variants compared (study, seeds); measures: the measures of seeds
Scores are reused only for what they were made of (OUT/scores/.../scored.json: the set, the
benchmark's arguments, each model file's hash and the settings hash of its variant): after an edit of a
variant's recipe its model is not scored until retrained. ``--report-only`` writes the report from
the scores on disk as they are (committed scores, models absent); ``--dry-run`` prints the commands a
run would start and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from eval.launch import train_command
from eval.results import read_rows

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ("study", "seeds", "table")
GRID_KEYS = {
    "report",
    "out",
    "page",
    "runs",
    "seeds",
    "eval",
    "benchmark",
    "references",
    "models",
    "train",
    "variants",
    "pairs",
    "measures",
    "together",
    "title",
    "scores",
}
VARIANT_KEYS = {"recipe", "overrides", "seeds", "teacher", "score"}


class GridError(SystemExit):
    """A grid that cannot run: one line naming the problem."""

    def __init__(self, grid: Path | str, message: str):
        super().__init__(f"error: grid {grid}: {message}")


class Shell:
    """Runs commands from the project root, each echoed and kept for commands.txt; with ``dry``
    only echoes them."""

    def __init__(self, dry: bool = False):
        self.commands: list[str] = []
        self.dry = dry

    def __call__(self, cmd: list[str]) -> None:
        self.commands.append(shlex.join(cmd))
        print("$", self.commands[-1], flush=True)
        if not self.dry:
            subprocess.run(cmd, check=True, cwd=ROOT)

    def write(self, path: Path) -> None:
        """The commands run, one per line (nothing when none ran)."""
        if self.commands and not self.dry:
            path.write_text("\n".join(self.commands) + "\n")


def trained(run_dir: Path, settings: str) -> bool:
    """Whether ``run_dir`` holds a finished run whose model has ``settings`` (its variant's hash
    now): then it is not launched again (a relaunch would export its model anew, under the new
    launch's overrides, and the model file's hash that its scores are keyed on would change)."""
    return finished(ROOT / run_dir) and trained_settings(ROOT / run_dir / "model.safetensors") == settings


def finished(run_dir: Path) -> bool:
    """Whether a training run has reached its last step (its checkpoint says so)."""
    from gan_stretch.errors import GanStretchError
    from gan_stretch.io import checkpoint

    try:
        meta = checkpoint.load(run_dir / "checkpoints" / "last.safetensors")[1]
    except GanStretchError:
        return False
    return meta.get("step") == meta.get("recipe", {}).get("steps")


def variant_settings(recipe: str, *overrides: str) -> str:
    """The settings hash a model of ``recipe`` with ``overrides`` records (its recipe's ``sha256``)."""
    from gan_stretch.train.recipes import load_recipe, recipe_source

    return recipe_source(load_recipe(ROOT / recipe, list(overrides)))["sha256"]


def trained_settings(model: Path) -> str | None:
    """The settings hash a model file records of the recipe that trained it (None: no model there)."""
    from gan_stretch.errors import GanStretchError
    from gan_stretch.io import checkpoint

    try:
        return checkpoint.load(model)[1].get("recipe", {}).get("sha256")
    except GanStretchError:
        return None


def scores_key(data: str, benchmark: list[str], model: Path | None = None, settings: str | None = None) -> dict:
    """What one benchmark folder's scores are of: the set and the benchmark's arguments, and for a
    trained model its file's hash and the settings hash of the variant it stands for."""
    from gan_stretch.data.cache import file_digest

    key = {"data": str(data), "benchmark": list(benchmark)}
    if model is not None:
        key.update({"model_sha1": file_digest(model), "settings": settings})
    return key


def reusable(folder: Path, key: dict, table: str = "results.csv") -> bool:
    """Whether ``folder`` holds scores (``table``) made of exactly ``key`` (recorded beside them by :func:`score`)."""
    try:
        return (folder / table).is_file() and json.loads((folder / "scored.json").read_text()) == key
    except (OSError, ValueError):
        return False


def score(folder: Path, key: dict, run_benchmark, table: str = "results.csv", dry: bool = False) -> None:
    """Runs ``run_benchmark()``, which writes ``folder/table``, unless ``folder`` holds scores of
    exactly ``key``; records ``key`` beside the new scores (folder/scored.json). ``dry``: only
    ``run_benchmark()`` (which prints the command), nothing on disk changed."""
    if reusable(folder, key, table):
        return
    if dry:
        run_benchmark()
        return
    (folder / "scored.json").unlink(missing_ok=True)
    run_benchmark()
    (folder / "scored.json").write_text(json.dumps(key, indent=1) + "\n")


def stale(model: Path, settings: str) -> bool:
    """Whether ``model`` was trained with other settings than ``settings`` (its variant's hash now);
    says so: its scores would stand for a variant that no longer exists."""
    if trained_settings(model) == settings:
        return False
    print(f"not scoring {model}: trained with other settings than its variant now gives; retrain it")
    return True


@dataclass
class Run:
    """One training run of a grid: a variant at one seed."""

    name: str  # the run's folder name, and the method name its scores carry
    variant: str
    recipe: str
    run_dir: Path
    given: tuple[str, ...]  # the overrides of its training command
    scored_as: str | None  # None: trained, not scored
    teacher: str | None = None
    settings: str = field(default="", repr=False)
    trains: bool = False  # not finished with its variant's settings: trained by a run of the grid

    @property
    def model(self) -> Path:
        return self.run_dir / "model.safetensors"


def load_grid(path: str | Path) -> dict:
    """A grid file, checked: every key known, every variant with a recipe that exists, every pair
    naming variants, the report one of REPORTS."""
    path = Path(path)
    if not path.is_file():
        raise GridError(path, "no such file")
    try:
        grid = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise GridError(path, f"not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(grid, dict):
        raise GridError(path, "not a mapping of keys")
    unknown = sorted(set(grid) - GRID_KEYS)
    if unknown:
        raise GridError(path, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(GRID_KEYS))})")
    for key in ("report", "out", "eval", "variants"):
        if key not in grid:
            raise GridError(path, f"no {key!r}")
    if grid["report"] not in REPORTS:
        raise GridError(path, f"report {grid['report']!r} is none of {', '.join(REPORTS)}")
    if grid["report"] != "study" and "page" not in grid:
        raise GridError(path, f"a {grid['report']} report needs a 'page' (the file it writes)")
    if not isinstance(grid["eval"], dict) or not grid["eval"]:
        raise GridError(path, "'eval' must map set names to corpus folders")
    variants = grid["variants"]
    if not isinstance(variants, dict) or not variants:
        raise GridError(path, "'variants' must map names to {recipe: ...}")
    for name, v in variants.items():
        if not isinstance(v, dict) or "recipe" not in v:
            raise GridError(path, f"variant {name!r} has no recipe")
        bad = sorted(set(v) - VARIANT_KEYS)
        if bad:
            raise GridError(path, f"variant {name!r}: unknown key(s) {', '.join(bad)}")
        if not (ROOT / v["recipe"]).is_file():
            raise GridError(path, f"variant {name!r}: recipe {v['recipe']} not found")
    scored = {scored_name(n, v) for n, v in variants.items()}
    for pair in grid.get("pairs", []):
        if len(pair) != 2 or any(p not in scored for p in pair):
            raise GridError(path, f"pair {pair} must name two scored variants ({', '.join(sorted(scored))})")
    grid.setdefault("runs", f"runs/{path.stem}")
    grid.setdefault("seeds", [])
    grid.setdefault("benchmark", [])
    grid.setdefault("references", {})
    grid.setdefault("models", {})
    grid.setdefault("train", {})
    grid["benchmark"] = [str(a) for a in grid["benchmark"]]
    return grid


def scored_name(name: str, variant: dict) -> str | None:
    s = variant.get("score", True)
    return name if s is True else (s or None)


def plan(grid: dict) -> list[Run]:
    """Every run of the grid in order: seed by seed, the variants of the grid's seeds; then the
    variants with seeds of their own; unseeded variants first of all (their models may be the
    {name} of other variants' overrides)."""
    runs, extra = Path(grid["runs"]), grid["train"].get("overrides", [])
    models = {name: str(p) for name, p in grid["models"].items()}
    out: list[Run] = []

    def add(name: str, v: dict, seed: int | None) -> None:
        run = f"{name}-s{seed}" if seed is not None else name
        overrides = [o.format_map(models) for o in v.get("overrides", [])]
        given = (f"run_dir={runs / run}", *extra, *overrides, *([f"seed={seed}"] if seed is not None else []))
        scored = scored_name(name, v)
        scored = None if scored is None else (f"{scored}-s{seed}" if seed is not None else scored)
        out.append(Run(run, name, v["recipe"], runs / run, given, scored, v.get("teacher")))

    variants = grid["variants"]
    own = lambda v: v.get("seeds", grid["seeds"]) or []
    for name, v in variants.items():
        if not own(v):
            add(name, v, None)
            models[name] = str(runs / name / "model.safetensors")
    for seed in grid["seeds"]:
        for name, v in variants.items():
            if "seeds" not in v:
                add(name, v, seed)
    for name, v in variants.items():
        if "seeds" in v:
            for seed in v["seeds"]:
                add(name, v, seed)
    return out


def train(grid: dict, runs: list[Run], sh: Shell, mode: str) -> None:
    """Trains (``mode`` train) every run that has not finished with its variant's settings; sets
    each run's settings hash. A teacher's corpus is made once, before the first run on it."""
    data = grid["train"].get("data")
    accelerate = str(ROOT / grid["train"].get("accelerate_config", "recipes/accelerate/cpu.yaml"))
    teachers_made: set[str] = set()
    for r in runs:
        given = list(r.given)
        if data:
            corpus = data if r.teacher is None else str(Path(data).with_name(f"{Path(data).name}-{r.teacher}-teacher"))
            given.insert(1, f"data={corpus}")
            if r.teacher and corpus not in teachers_made and mode == "train" and not (ROOT / corpus).is_dir():
                sh(
                    [
                        sys.executable,
                        "-c",
                        "import sys; from gan_stretch.data.teacher_corpora import teacher_from_corpus as t; "
                        "t(sys.argv[1], sys.argv[2], sys.argv[3])",
                        data,
                        corpus,
                        r.teacher,
                    ]
                )
                teachers_made.add(corpus)
        elif r.teacher:
            raise GridError(grid.get("_path", "?"), f"variant {r.variant!r} trains on a teacher: give train.data")
        r.given = tuple(given)
        r.settings = variant_settings(r.recipe, *given)
        r.trains = not trained(r.run_dir, r.settings)
        if mode == "train" and r.trains:
            sh(train_command(accelerate, str(ROOT / r.recipe), *given))


def benchmark_command(data: str, folder: Path, args: list[str], jobs: int | None) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "eval/benchmark.py"),
        "--data",
        data,
        "--out",
        str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder),  # it runs from ROOT
        *args,
        *(["--jobs", str(jobs)] if jobs else []),
    ]


def ready(r: Run) -> bool:
    """Whether a run's model can be scored: its run has finished, with its variant's settings now."""
    return finished(ROOT / r.run_dir) and not stale(ROOT / r.model, r.settings)


def score_all(grid: dict, runs: list[Run], sh: Shell, mode: str, jobs: int | None) -> dict[str, list[dict]]:
    """Scores what is missing (not in ``mode`` report) and reads the scores: {set name: rows}, each
    row with its ``set``. One benchmark per model and set (and one per reference), so scores
    accumulate as runs finish; with ``together``, one benchmark of every model per set."""
    from functools import partial

    scores, scored = ROOT / grid.get("scores", f"{grid['out']}/scores"), [r for r in runs if r.scored_as]
    to_train = lambda r: sh.dry and mode == "train" and r.trains  # a dry run lists its scores too
    sets: dict[str, list[dict]] = {}
    for name, data in grid["eval"].items():
        rows = sets.setdefault(name, [])
        if grid.get("together"):
            folder = scores / name
            methods = [m for ms in grid["references"].values() for m in ms]
            use = scored if mode == "report" else [r for r in scored if to_train(r) or ready(r)]
            args = [*grid["benchmark"], *[a for r in use for a in ("--model", f"{r.scored_as}={r.model}")]]
            args += ["--methods", *methods]
            command = partial(sh, benchmark_command(data, folder, args, jobs))
            if mode != "report" and any(map(to_train, use)):
                command()  # a dry run: scored once trained
            elif mode != "report" and use:
                key = {
                    "data": str(data),
                    "benchmark": args,
                    "models": {r.scored_as: scores_key(data, [], ROOT / r.model, r.settings) for r in use},
                }
                score(folder, key, command, dry=sh.dry)
            if (folder / "results.csv").is_file() and not sh.dry:
                rows += read_rows(folder / "results.csv", set=name)
            continue
        jobs_here = [(ref, None, ["--methods", *methods]) for ref, methods in grid["references"].items()]
        jobs_here += [(r.scored_as, r, ["--model", f"{r.scored_as}={r.model}", "--methods"]) for r in scored]
        for label, r, args in jobs_here:
            folder = scores / name / label
            if mode != "report":
                args = [*grid["benchmark"], *args]
                command = partial(sh, benchmark_command(data, folder, args, jobs))
                if r is not None and to_train(r):
                    command()  # a dry run: scored once trained
                    continue
                if r is not None and not ready(r):
                    continue
                key = scores_key(data, args, None if r is None else ROOT / r.model, None if r is None else r.settings)
                score(folder, key, command, dry=sh.dry)
            if (folder / "results.csv").is_file() and not sh.dry:
                rows += read_rows(folder / "results.csv", set=name)
    return sets


def write_report(grid: dict, sets: dict[str, list[dict]], command: str) -> Path:
    """The grid's report from its scores; returns the file written."""
    if grid["report"] == "study":
        from eval.study import write_study

        return write_study(ROOT / grid["out"], sets, grid["seeds"], [tuple(p) for p in grid["pairs"]], command)
    if grid["report"] == "seeds":
        from eval.seeds import page

        text = page(sets, [tuple(p) for p in grid["pairs"]], grid.get("measures", ["logmel_db"]))
    else:
        from eval.benchmark import tables

        text = "".join(
            tables(
                rows,
                f"{grid.get('title', name)}: {len({r['piece'] for r in rows})} held-out pieces of {grid['eval'][name]}",
            )
            for name, rows in sets.items()
        )
    (ROOT / grid["page"]).write_text(text)
    print(text)
    return ROOT / grid["page"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", help="a grid file (recipes/grids/NAME.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the commands a run would start; change nothing")
    p.add_argument("--no-train", action="store_true", help="train nothing: score the runs that have finished")
    p.add_argument(
        "--report-only", action="store_true", help="train and score nothing: the report from the scores on disk"
    )
    p.add_argument("-j", "--jobs", type=int, default=None, help="processes for each benchmark (default: one per core)")
    args = p.parse_args(argv)
    grid = load_grid(args.grid)
    grid["_path"] = args.grid
    mode = "report" if args.report_only else "score" if args.no_train else "train"
    sh = Shell(dry=args.dry_run)
    runs = plan(grid)
    if mode != "report":
        train(grid, runs, sh, mode)
    if not args.dry_run:
        (ROOT / grid["out"]).mkdir(parents=True, exist_ok=True)
    sets = score_all(grid, runs, sh, mode, args.jobs)
    if args.dry_run:
        return 0
    if not any(sets.values()):
        raise GridError(args.grid, f"no scores under {grid['out']} to report")
    try:
        shown = Path(args.grid).resolve().relative_to(ROOT)
    except ValueError:
        shown = Path(args.grid)
    written = write_report(grid, sets, f"python -m eval.run {shown}")
    sh.write(ROOT / grid["out"] / "commands.txt")
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
