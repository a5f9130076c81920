"""Mutation check: deliberate bugs, each made in a copy of the project, must each make a test fail.

    .venv/bin/python tests/mutation_check.py            # every mutation (about 2-3 minutes on 2 cores)
    .venv/bin/python tests/mutation_check.py --list     # what each one changes
    .venv/bin/python tests/mutation_check.py floor int  # the mutations whose names contain these words
    .venv/bin/python tests/mutation_check.py --every    # name every test that catches each bug (slower)

The working tree (without .git, .venv, runs, data, results) is copied to a temporary folder once;
the tests named for each mutation first run there unchanged (they must pass), then each
mutation's text substitution is applied to its file, its tests run against the copy (cwd and
PYTHONPATH point at the copy, so the copy's package is the one imported), and the file is put
back. Exit status 0 when every bug is caught; 1 when one survives, no longer applies (its
text is gone from the file: update the table) or its tests cannot run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL_SKIP = {".git", ".venv", "runs", "data", "results"}  # the package has a data/ of its own
SKIP = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    subs: tuple[tuple[str, str, int], ...]  # (text, replacement, occurrences the file must hold: all replaced)
    tests: tuple[str, ...]


def bug(name: str, file: str, old: str, new: str, tests, count: int = 1, also=()) -> Mutation:
    return Mutation(name, file, ((old, new, count), *also), tuple(tests))


METRIC_TESTS = ("tests/measures/test_metric_reference.py",)
TIMEMAP_TESTS = (
    "tests/dsp/test_timemap.py",
    "tests/test_promises.py::test_each_click_lands_at_t_over_rate",
    "tests/test_promises.py::test_each_click_lands_at_its_time_map_target",
    "tests/test_promises.py::test_stretch_gives_exactly_round_n_over_rate_samples",
)

MUTATIONS = [
    bug(
        "a true-tempo corpus's renders of one piece counted as separate recordings (real and fake may share a piece)",
        "gan_stretch/data/manifest.py",
        'fallback = item.source if self.kind == "true-tempo" and item.source else item.id',
        "fallback = item.id",
        ("tests/train/test_training.py::test_a_true_tempo_corpus_serves_as_unlabeled_music_its_tempo_1_renders_alone",),
    ),
    bug(
        "the relative spectrogram discriminator still reads the window's level",
        "gan_stretch/models/discriminator.py",
        "return [v - v.mean(dim=1, keepdim=True) for v in views] if self.cfg.relative else views",
        "return views",
        ("tests/models/test_models.py::test_a_relative_spectrogram_discriminator_does_not_see_the_level",),
    ),
    bug(
        "spec_delta never reaches the render spectrogram discriminator",
        "gan_stretch/train/gan.py",
        "spectrogram_discriminator(recipe, spec, True, recipe.spec_delta)",
        "spectrogram_discriminator(recipe, spec, True, 0.0)",
        ("tests/train/test_training.py::test_the_render_spectrogram_discriminator_sees_the_change_plane_when_asked",),
    ),
    bug(
        "a checkpoint from before a setting was added is refused",
        "gan_stretch/train/common.py",
        "        if changed == []:\n",
        "        if changed == [] and not hashed:\n",
        ("tests/train/test_training.py::test_resume_accepts_a_checkpoint_from_before_a_setting_was_added",),
    ),
    bug(
        "the recorded study launches finished runs again (re-exporting their models)",
        "eval/recorded_study.py",
        "or args.no_train or trained(run, settings[run])):",
        "or args.no_train):",
        ("tests/eval/test_study.py::test_recorded_study_does_not_launch_a_finished_run_again",),
    ),
    bug(
        "pitch shift resampled the wrong way (the stretch's length kept, the pitch moved the other way)",
        "gan_stretch/dsp/pitch.py",
        "soxr.ResampleStream(factor(semitones), 1.0,",
        "soxr.ResampleStream(1.0, factor(semitones),",
        ("tests/dsp/test_pitch.py::test_shift_keeps_the_duration_and_moves_a_sine_by_the_semitones",),
    ),
    bug(
        "a shift stretched by 2^(-n/12) instead of 2^(n/12)",
        "gan_stretch/dsp/pitch.py",
        "f = factor(semitones)\n    target",
        "f = 1 / factor(semitones)\n    target",
        ("tests/dsp/test_pitch.py::test_shift_keeps_the_duration_and_moves_a_sine_by_the_semitones",),
    ),
    bug(
        "log-mel floor 80 dB -> 60 dB",
        "gan_stretch/measures/metrics.py",
        "float(p_ref.max()) * 1e-8",
        "float(p_ref.max()) * 1e-6",
        METRIC_TESTS,
    ),
    bug(
        "log-mel mean absolute instead of RMS over mel bins",
        "gan_stretch/measures/metrics.py",
        "np.sqrt((diff**2).mean(axis=0)).mean()",
        "np.abs(diff).mean(axis=0).mean()",
        METRIC_TESTS,
    ),
    # the two melspectrogram calls of log_mel_distance (the perception measures have their own)
    bug(
        "log-mel 128 mels",
        "gan_stretch/measures/metrics.py",
        "hop_length=256, n_mels=80, power=2.0)",
        "hop_length=256, n_mels=128, power=2.0)",
        METRIC_TESTS,
        count=2,
    ),
    bug(
        "log-mel hop 512",
        "gan_stretch/measures/metrics.py",
        "n_fft=2048, hop_length=256, n_mels=80, power=2.0)",
        "n_fft=2048, hop_length=512, n_mels=80, power=2.0)",
        METRIC_TESTS,
        count=2,
    ),
    bug(
        "log-mel n_fft 1024",
        "gan_stretch/measures/metrics.py",
        "n_fft=2048, hop_length=256, n_mels=80, power=2.0)",
        "n_fft=1024, hop_length=256, n_mels=80, power=2.0)",
        METRIC_TESTS,
        count=2,
    ),
    bug(
        "output length round(n / rate) -> int(n / rate)",
        "gan_stretch/dsp/timemap.py",
        "max(1, round(n / rate))",
        "max(1, int(n / rate))",
        TIMEMAP_TESTS,
    ),
    bug(
        "time map source and target swapped (inverse rate)",
        "gan_stretch/dsp/timemap.py",
        "np.interp(t, self.target, self.source)",
        "np.interp(t, self.source, self.target)",
        TIMEMAP_TESTS,
    ),
    bug(
        "time-map anchors dropped, only the end point kept",
        "gan_stretch/dsp/timemap.py",
        "src, tgt = np.append(src, n), np.append(tgt, n_out)",
        "src, tgt = np.array([0.0, n]), np.array([0.0, n_out])",
        TIMEMAP_TESTS,
    ),
    bug(
        "each streamed block restarts its phase",
        "gan_stretch/stretching/stretcher.py",
        "render_block(self, frames_in, view, carry, ref,",
        "render_block(self, frames_in, view, None, ref,",
        ("tests/stretching/test_streaming.py::test_streaming_in_small_blocks_matches_one_block",),
    ),
    bug(
        "band cross-fade over 20 % instead of 10 %",
        "gan_stretch/dsp/band.py",
        "/ (0.1 * nyquist)",
        "/ (0.2 * nyquist)",
        ("tests/test_promises.py::test_band_cross_fade_covers_the_models_top_10_percent",),
    ),
    bug(
        "training caches read every item, held-out ones included",
        "gan_stretch/data/cache.py",
        "items = corpus.split(split)",
        "items = corpus.items",
        ("tests/test_promises.py::test_training_never_reads_held_out_items",),
        count=2,
    ),
    bug(
        "the recordings cache reads every excerpt, held-out ones included",
        "gan_stretch/data/cache.py",
        'items = corpus.split("train")',
        "items = corpus.items",
        (
            "tests/train/test_training.py::test_recordings_cache_reads_the_training_split_only_and_draws_real_and_fake_apart",
        ),
    ),
    bug(
        "the generator stretches the recordings the discriminator sees as real in the same step",
        "gan_stretch/data/cache.py",
        "ok = ~real_side[self.groups]",
        "ok = real_side[self.groups]",
        (
            "tests/train/test_training.py::test_recordings_cache_reads_the_training_split_only_and_draws_real_and_fake_apart",
        ),
    ),
    bug(
        "the spectrogram view's stretches of recordings carry no gradient to the generator",
        "gan_stretch/train/gan.py",
        "residual_output(self.stage.autoencoder, rec_fake, rb.src, src_db)",
        "residual_output(self.stage.autoencoder, rec_fake.detach(), rb.src, src_db)",
        ("tests/train/test_training.py::test_generator_learns_from_the_recordings_discriminator_alone",),
    ),
    bug(
        "the recordings cache keeps the own-tempo frames where the time-scaled ones belong",
        "gan_stretch/data/cache.py",
        "scaled = timemap.time_scale(db, positions)\n                src_db",
        "scaled = db\n                src_db",
        ("tests/train/test_training.py::test_recordings_cache_keeps_the_frames_a_spectrogram_discriminator_reads",),
    ),
    bug(
        "a rerun after a recipe edit resumes the old checkpoint",
        "gan_stretch/train/common.py",
        'if hashed and meta["training_sha256"] == settings_hash(now):',
        "if True:",
        ("tests/train/test_training.py::test_resume_refuses_a_checkpoint_of_an_edited_recipe",),
    ),
    bug(
        "eval/run.py reuses scores whatever model and settings they were made of",
        "eval/run.py",
        'return (folder / table).is_file() and json.loads((folder / "scored.json").read_text()) == key',
        "return (folder / table).is_file()",
        ("tests/eval/test_run.py::test_scores_are_reused_only_for_the_same_model_file_and_variant_settings",),
    ),
    bug(
        "a generator-only recipe still trains the latent discriminator",
        "gan_stretch/train/recipes.py",
        '"latent": self.adv_weight + self.fm_weight,',
        '"latent": self.adv_weight + self.fm_weight + 1,',
        ("tests/train/test_training.py::test_generator_recipe_trains_no_discriminator_and_exports_a_generator",),
    ),
    bug(
        "the generator's adversarial terms push the wrong way (toward 'fake')",
        "gan_stretch/train/gan.py",
        'f"loss/{self.prefix}adversarial": sum(losses.generator_loss(x) for x in score_maps(d_fake)),',
        'f"loss/{self.prefix}adversarial": sum((x**2).mean() for x in score_maps(d_fake)),',
        ("tests/train/test_training.py::test_generator_learns_from_the_recordings_discriminator_alone",),
    ),
    bug(
        "one loudness reference for all channels instead of one per channel",
        "gan_stretch/stretching/magnitudes.py",
        "return torch.maximum(db, db.max() - cfg.db_range)",
        "return db.max().expand_as(db)",
        ("tests/stretching/test_stretch.py::test_each_channel_has_its_own_loudness_reference",),
    ),
    bug(
        "benchmark duration error against the input's length",
        "eval/benchmark.py",
        "metrics.duration_error(out, truth.shape[-1], sr)",
        "metrics.duration_error(out, src.shape[-1], sr)",
        ("tests/test_promises.py::test_benchmark_score",),
    ),
    bug(
        "a stream's analysis reads the samples fed, not its step's (the output depends on the chunk sizes)",
        "gan_stretch/stretching/realtime.py",
        "avail = (h - cfg.n_fft // 2) // cfg.hop + 1 if h >= cfg.n_fft // 2 else 0",
        "avail = (self.fed - cfg.n_fft // 2) // cfg.hop + 1 if self.fed >= cfg.n_fft // 2 else 0",
        ("tests/stretching/test_realtime.py::test_chunk_sizes_give_the_same_output",),
    ),
    bug(
        "a stream's latency leaves out its block and lookahead (output promised before it is final)",
        "gan_stretch/stretching/realtime.py",
        "+ max((self.block + self.ahead + 2) * rate, self.block * rate + FIT_AHEAD + 2)",
        "+ 0",
        ("tests/stretching/test_realtime.py::test_the_output_trails_the_input_by_the_latency_reported",),
    ),
    bug(
        "a stream fits each decay over the gap's first frames only (extrapolated over the gap)",
        "gan_stretch/stretching/realtime.py",
        "hi = np.floor(np.asarray(read)).astype(np.int64) + 1 + FIT_AHEAD",
        "hi = np.full(len(read), lo + FIT_AHEAD)",
        ("tests/stretching/test_realtime.py::test_a_decay_in_two_stages_follows_the_offline_fit",),
    ),
]


def copy_tree(dst: Path) -> Path:
    def ignore(folder, names):
        top = Path(folder) == ROOT
        return [n for n in names if n in SKIP or (top and n in TOP_LEVEL_SKIP) or n.endswith(".pyc")]

    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)
    return dst


def pytest(copy: Path, tests, timeout: float = 900, every: bool = False) -> tuple[str, str, float]:
    """Runs ``tests`` in the copy: (passed | failed | skipped | error, detail, seconds). It stops at
    the first failure unless ``every``, where the detail names every failing test."""
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "PYTHONDONTWRITEBYTECODE": "1",  # no stale .pyc after a put-back
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *tests, *([] if every else ["-x"]), "-q", "-rfEs", "-p", "no:cacheprovider"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - start
    out = proc.stdout + proc.stderr
    failing = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    first = failing[0] if failing else ""
    if proc.returncode == 1:
        if every:
            names = [line.split()[1] for line in failing]
            return "failed", f"{len(names)} failing: " + ", ".join(n.split("::", 1)[-1] for n in names), seconds
        return "failed", first, seconds
    if proc.returncode != 0:
        return "error", f"pytest exit {proc.returncode}: " + (first or out.strip()[-300:]), seconds
    if not re.search(r"\d+ passed", out) and re.search(r"\d+ skipped", out):
        skip = next((line for line in out.splitlines() if line.startswith("SKIPPED")), "skipped")
        return "skipped", skip, seconds
    return "passed", "", seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("words", nargs="*", help="run only the mutations whose names contain one of these words")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument(
        "--every",
        action="store_true",
        help="run every selected test of a mutation and name all that fail "
        "(slower; by default each stops at its first failure)",
    )
    args = p.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.words or any(w.lower() in m.name.lower() for w in args.words)]
    if args.list or not chosen:
        for m in MUTATIONS:
            print(m.name)
            for old, new, _ in m.subs:
                print(f"    {m.file}: {old!r} -> {new!r}")
            print(f"    tests: {' '.join(m.tests)}")
        return 0 if chosen else 1

    with tempfile.TemporaryDirectory(prefix="gan-stretch-mutants-") as tmp:
        copy = copy_tree(Path(tmp) / "project")
        probe = subprocess.run(
            [sys.executable, "-c", "import gan_stretch; print(gan_stretch.__file__)"],
            cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
        )
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy's package is not the one imported: {probe.stdout.strip() or probe.stderr.strip()}")
            return 1
        tests = list(dict.fromkeys(t for m in chosen for t in m.tests))
        status, detail, seconds = pytest(copy, tests)
        print(f"unchanged copy: {len(tests)} test selections {status} ({seconds:.0f} s) {detail}")
        if status != "passed":
            print("the tests must pass on the unchanged project before bugs are put in")
            return 1

        rows, bad = [], 0
        for m in chosen:
            path = copy / m.file
            original = path.read_text()
            stale = [(old, original.count(old), count) for old, _, count in m.subs if original.count(old) != count]
            if stale:
                old, found, count = stale[0]
                rows.append(
                    (m.name, "NO LONGER APPLIES", f"{old!r} found {found} times in {m.file}, expected {count}", 0.0)
                )
                print(f"{'NO LONGER APPLIES':>18}  {m.name}  {rows[-1][2]}", flush=True)
                bad += 1
                continue
            mutated = original
            for old, new, _ in m.subs:
                mutated = mutated.replace(old, new)
            path.write_text(mutated)
            try:
                status, detail, seconds = pytest(copy, m.tests, every=args.every)
            finally:
                path.write_text(original)
            verdict = {"failed": "caught", "passed": "NOT CAUGHT", "skipped": "NOT RUN (skipped)", "error": "ERROR"}[
                status
            ]
            bad += status != "failed"
            rows.append((m.name, verdict, detail, seconds))
            print(f"{verdict:>18}  {m.name}  ({seconds:.0f} s)  {detail}", flush=True)

    print()
    print("| deliberate bug | result | first failing test |")
    print("|---|---|---|")
    for name, verdict, detail, _ in rows:
        print(f"| {name} | {verdict} | {detail.removeprefix('FAILED ').split(' - ')[0]} |")
    caught = sum(v == "caught" for _, v, _, _ in rows)
    print(f"\n{caught} of {len(rows)} caught in {sum(r[3] for r in rows):.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
