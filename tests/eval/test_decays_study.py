"""eval/decays.py: the decays study's paired table and its run on a true-tempo corpus."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from eval import decays as study


def write_run(folder: Path, logmel: list[float], visqol: list[float], pieces: list[str]) -> None:
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["piece", "method", "rate", "logmel_db", "visqol"])
        w.writeheader()
        for p, lm, vq in zip(pieces, logmel, visqol):
            w.writerow({"piece": p, "method": "default", "rate": "0.5", "logmel_db": lm, "visqol": vq})
            w.writerow({"piece": p, "method": "other", "rate": "0.5", "logmel_db": 99, "visqol": 1})


def test_paired_table_reports_gains_on_both_axes_with_intervals(tmp_path):
    rng = np.random.default_rng(0)
    before = rng.uniform(3, 5, 12)
    pieces = [f"p{i}" for i in range(12)]
    write_run(tmp_path / "before" / "set-a", list(before), [4.0] * 12, pieces)
    write_run(tmp_path / "after" / "set-a", list(before - 0.1), [4.05] * 12, pieces)  # closer and higher
    table = study.paired(tmp_path / "before", tmp_path / "after")
    row = next(line for line in table.splitlines() if line.startswith("| set-a"))
    assert "(+0.100) | [+0.100, +0.100]" in row  # log-mel gain: 0.1 dB closer on every clip
    assert "4.000 -> 4.050 (+0.050)" in row


def test_paired_table_refuses_runs_of_different_clips(tmp_path):
    write_run(tmp_path / "before" / "s", [3.0, 4.0], [4.0, 4.0], ["a", "b"])
    write_run(tmp_path / "after" / "s", [3.0, 4.0], [4.0, 4.0], ["a", "c"])
    with pytest.raises(SystemExit, match="different clips"):
        study.paired(tmp_path / "before", tmp_path / "after")


@pytest.mark.slow
def test_the_study_scores_decays_against_the_truths_own_level_change(tiny_corpus, tmp_path):
    study.main(
        ["--out", str(tmp_path / "out"), "--eval", str(tiny_corpus.root.parent), "--sets", tiny_corpus.root.name]
        + ["--pieces", "1", "--rates", "2", "--fits", "line"]
    )
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["method"] for r in rows) == ["default", "fit-line", "no-decays"]
    for r in rows:
        assert np.isfinite(float(r["logmel_db"])) and np.isfinite(float(r["round_trip_db"]))
        # sped up, a piece of decaying notes is louder, in the truth and with the decays
        assert float(r["truth_level_db"]) > 0
    level = {r["method"]: float(r["level_db"]) for r in rows}
    assert level["default"] > level["no-decays"]
    assert "truth level" in (tmp_path / "out" / "table.md").read_text()
    assert study.decays.decay_slope is not study.fit_line  # the shipped fit is back after the run
