"""The paired statistics behind the studies (eval/stats.py, eval/results.py) and the pages of eval/seeds.py and eval/recorded_study.py."""

from __future__ import annotations

import csv

import numpy as np

from eval import recorded_study, seeds
from eval.results import paired, variant_seed
from eval.stats import bootstrap_ci, improvement


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_clips():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.3, 1.0, 20), rng.normal(0.3, 1.0, 2000)
    m, lo, hi = bootstrap_ci(small)
    assert lo < m < hi
    m2, lo2, hi2 = bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 5 and lo2 > 0  # 2000 clips of +0.3: an interval excluding 0
    assert np.isnan(bootstrap_ci(np.array([np.nan]))[0])
    m3, lo3, hi3 = bootstrap_ci(np.array([0.1, 0.1]))  # one value per set and rate: no interval
    assert m3 == 0.1 and np.isnan(lo3) and np.isnan(hi3)


def test_improvement_points_the_right_way_for_each_measure():
    a, b = np.array([1.0]), np.array([2.0])
    assert improvement("logmel_db", a, b)[0] == 1.0  # lower is better
    assert improvement("visqol", a, b)[0] == -1.0  # higher is better
    assert improvement("attack_db", np.array([-0.5]), np.array([-2.0]))[0] == 1.5  # closer to 0
    assert abs(improvement("two_sample_accuracy", np.array([0.55]), np.array([0.7]))[0] - 0.15) < 1e-12


def test_paired_differences_average_seeds_per_clip_and_pair_by_clip():
    rows = []
    for piece in range(4):
        for seed, offset in ((0, 0.0), (1, 0.2)):
            rows.append(
                {
                    "set": "s",
                    "piece": f"p{piece}",
                    "rate": 0.5,
                    "method": f"gan-s{seed}",
                    "logmel_db": 3.0 + piece + offset,
                }
            )
        rows.append(
            {"set": "s", "piece": f"p{piece}", "rate": 0.5, "method": "gan-no-adv-s0", "logmel_db": 4.0 + piece}
        )
        rows.append({"set": "s", "piece": f"p{piece}", "rate": 0.5, "method": "wsola", "logmel_db": 9.0})
    # only seed 0 is common to both: the gan's seed 1 is left out of this pair
    np.testing.assert_allclose(paired(rows, "gan", "gan-no-adv", [0, 1], "logmel_db", None), [1.0] * 4)
    assert variant_seed("gan-adv0.3-s0") == ("gan-adv0.3", 0)
    assert variant_seed("rubberband-r3") == ("rubberband-r3", None)


def seeds_table(tmp_path, values, b: str, rates=(0.5, 2.0)) -> list[str]:
    """eval/seeds.py --a a --b B on one set of six clips per rate, each method's logmel_db being
    ``values[method](base)``: the cells of the set's row."""
    folder = tmp_path / "set1"
    folder.mkdir()
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["piece", "method", "rate", "logmel_db"])
        w.writeheader()
        for piece in range(6):
            for rate in rates:
                base = 4.0 + piece * 0.1
                for method, value in values.items():
                    w.writerow({"piece": f"p{piece}", "method": method, "rate": rate, "logmel_db": value(base)})
    out = tmp_path / "seeds.md"
    assert seeds.main(["--results", str(folder), "--a", "a", "--b", b, "--out", str(out)]) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| set1 |"))
    return [c.strip() for c in row.split("|")[2:-1]]


def test_seed_comparison_averages_seeds_per_clip_before_the_difference(tmp_path):
    """eval/seeds.py: variant a is 0.5 dB closer on every clip (its two seeds at -0.4 and -0.6);
    the table says +0.500 for every rate and overall, and lists each seed's mean."""
    same = lambda base: base
    values = {"b-s0": same, "b-s1": same, "a-s0": lambda base: base - 0.4, "a-s1": lambda base: base - 0.6}
    cells = seeds_table(tmp_path, values, "b")
    assert all(c.startswith("+0.500 [+0.500, +0.500]") for c in cells[:3])
    assert cells[3] == "a 3.850 / 3.650; b 4.250 / 4.250"


def test_seed_comparison_against_one_model_pairs_it_with_every_seed(tmp_path):
    """eval/seeds.py --b b-s0: the one model b-s0 (b-s1 exists but is not named) against both seeds
    of a (each fine-tuned from b-s0, say): a's seeds at -0.4 and -0.6 of b-s0 give +0.500."""
    values = {
        "b-s0": lambda base: base,
        "b-s1": lambda base: base + 1,
        "a-s0": lambda base: base - 0.4,
        "a-s1": lambda base: base - 0.6,
    }
    cells = seeds_table(tmp_path, values, "b-s0", rates=(2.0,))
    assert cells[0].startswith("+0.500 [+0.500, +0.500]") and cells[1].startswith("+0.500")


def test_recorded_study_pairs_by_recording_and_averages_seeds():
    """eval/recorded_study.py: naturalness is compared as distance from chance per recording
    (excerpts and seeds averaged first), round trip as dB; a variant better on every recording gets
    an interval that excludes 0, and the true-tempo tables pair clips as eval/study.py does."""
    rng = np.random.default_rng(0)
    rows = []
    for g in range(12):
        for variant, nat, rt in (("recorded", 0.55, 2.0), ("control", 0.70, 2.0)):
            for seed in (0, 1):
                for _ in range(2):  # two excerpts of each recording
                    rows.append(
                        {"variant": variant, "method": f"{variant}-s{seed}", "rate": "2.0", "recording": f"r{g}",
                         "naturalness": str(nat + 0.02 * seed), "round_trip_db": str(rt + rng.normal(0, 0.1))}
                    )  # fmt: skip
    nat = recorded_study.recorded_difference(rows, "naturalness", 2.0)
    assert nat["groups"] == 12 and abs(nat["difference"] - (0.06 - 0.21)) < 1e-9 and nat["ci"][1] < 0
    rt = recorded_study.recorded_difference(rows, "round_trip_db", 2.0)
    assert rt["ci"][0] < 0 < rt["ci"][1]  # the same round trip: no difference shown
    truth = [
        {"set": "s", "piece": f"p{k}", "rate": 2.0, "method": f"{v}-s0", "logmel_db": base + 0.01 * k}
        for k in range(10)
        for v, base in (("recorded", 3.0), ("control", 3.5))
    ]
    page, csv_rows = recorded_study.report(truth, rows, [0, 1], "python eval/recorded_study.py ...")
    assert "| naturalness | **-0.150 [" in page and "| logmel_db (lower is better) | **+0.500 [" in page
    assert {r["set"] for r in csv_rows} == {"recordings", "s", "all"}


def test_a_second_recorded_study_shares_the_first_ones_control_runs(tmp_path):
    """eval/recorded_study.py --name: the recorded variant under another name (another view of its
    discriminator through --extra) trains into its own folders, while the control (recordings terms
    off) keeps the folders and settings of the first study, so its runs and scores are reused; the
    scores of NAME-sK are read back as the recorded variant."""
    from eval.run import Shell

    common = ["--recordings", str(tmp_path / "rec"), "--eval", "x", "--autoencoder", "gan_stretch/checkpoints/default.safetensors",
              "--seeds", "0", "--runs", str(tmp_path / "runs"), "--no-train"]  # fmt: skip
    first = recorded_study.parser().parse_args([*common, "--extra", "data=d"])
    second = recorded_study.parser().parse_args(
        [
            *common,
            "--extra",
            "data=d rec_view=spectrogram rec_delta=3 rec_relative=true",
            "--name",
            "recorded-spectrogram",
        ]
    )
    # domain adaptation: the discriminator reads another corpus; the control, which reads none, is the same
    third = recorded_study.parser().parse_args(
        [*common, "--extra", f"data=d recordings={tmp_path / 'bank'}", "--name", "adapted"]
    )
    models_a, settings_a = recorded_study.train_variants(first, Shell(dry=True))
    models_b, settings_b = recorded_study.train_variants(second, Shell(dry=True))
    models_c, settings_c = recorded_study.train_variants(third, Shell(dry=True))
    assert set(models_a) == {"recorded-s0", "control-s0"} and set(models_b) == {"recorded-spectrogram-s0", "control-s0"}
    assert models_a["control-s0"] == models_b["control-s0"] == models_c["control-s0"]
    assert (
        settings_a[models_a["control-s0"]] == settings_b[models_b["control-s0"]] == settings_c[models_c["control-s0"]]
    )
    assert settings_a[models_a["recorded-s0"]] != settings_b[models_b["recorded-spectrogram-s0"]]
    assert settings_c[models_c["adapted-s0"]] not in (
        settings_a[models_a["recorded-s0"]],
        settings_a[models_a["control-s0"]],
    )
    assert recorded_study.as_variant(second, "recorded-spectrogram-s2") == "recorded-s2"
    assert recorded_study.as_variant(second, "control-s1") == "control-s1"


def test_recorded_study_does_not_launch_a_finished_run_again(tmp_path):
    """A run that has finished with its variant's settings is not launched again: a relaunch would
    export its model anew under the new launch's overrides, and the scores keyed on the model
    file's hash would all be made again."""
    import torch

    from eval.run import Shell
    from gan_stretch.io import checkpoint

    args = recorded_study.parser().parse_args(
        ["--recordings", str(tmp_path / "rec"), "--eval", "x", "--autoencoder", "gan_stretch/checkpoints/default.safetensors",
         "--seeds", "0", "--runs", str(tmp_path / "runs"), "--extra", "data=d"]
    )  # fmt: skip
    sh = Shell(dry=True)
    models, settings = recorded_study.train_variants(args, sh)
    assert len(sh.commands) == 2
    run = models["control-s0"]
    checkpoint.save(run / "model.safetensors", {"x": torch.zeros(1)}, {"recipe": {"sha256": settings[run]}})
    state = {"kind": "training-state", "stage": "gan", "step": 1200, "recipe": {"steps": 1200}}
    checkpoint.save(run / "checkpoints" / "last.safetensors", {"x": torch.zeros(1)}, state)
    sh = Shell(dry=True)
    recorded_study.train_variants(args, sh)
    assert len(sh.commands) == 1 and "run_dir=" + str(models["recorded-s0"]) in sh.commands[0]
    checkpoint.save(run / "model.safetensors", {"x": torch.zeros(1)}, {"recipe": {"sha256": "other"}})
    sh = Shell(dry=True)
    recorded_study.train_variants(args, sh)
    assert len(sh.commands) == 2  # trained with other settings: launched (the trainer refuses or resumes it)
