"""eval/report.py: one report from the benchmark folders of several evaluation sets."""

from __future__ import annotations

import csv
from pathlib import Path

from eval import report


def write(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["piece", "method", "rate", "logmel_db", "visqol", "attack_db", "smear_db"])
        w.writeheader()
        w.writerows(rows)
    return folder


def test_report_tables_and_targets(tmp_path):
    rows = []
    for piece, shift in (("p0", 0.0), ("p1", 1.0)):
        for rate in (0.5, 2.0):
            rows += [
                {
                    "piece": piece,
                    "method": "default",
                    "rate": rate,
                    "logmel_db": 3.0 + shift,
                    "visqol": 4.5,
                    "attack_db": -2.0,
                    "smear_db": 0.1,
                },
                {
                    "piece": piece,
                    "method": "wsola",
                    "rate": rate,
                    "logmel_db": 3.5 + shift,
                    "visqol": 4.4,
                    "attack_db": -1.0,
                    "smear_db": 0.2,
                },
                {
                    "piece": piece,
                    "method": "rubberband-r3",
                    "rate": rate,
                    "logmel_db": 5.0,
                    "visqol": 4.6 if rate == 0.5 else 4.4,
                    "attack_db": -3.0,
                    "smear_db": 0.3,
                },
            ]
    a = write(tmp_path / "setA", rows)
    b = write(tmp_path / "setB", [{**r, "logmel_db": r["logmel_db"] + 1} for r in rows])
    out = tmp_path / "report.md"
    assert report.main(["--results", str(a), str(b), "--out", str(out), "--model", "default"]) == 0
    text = out.read_text()
    assert "| default | 3.50 | 4.50 | 4.00 |" in text  # means over pieces and rates, per set, then over sets
    assert "| wsola | 4.00 | 5.00 | 4.50 |" in text
    # the best classical is WSOLA, 0.5 dB behind the default at every rate; R3 leads ViSQOL at 0.5 only
    assert "| log-mel margin, dB | +0.50 | +0.50 | +0.50 |" in text
    assert "| ViSQOL - R3 | -0.100 | +0.100 | +0.000 |" in text
    assert "| attack, dB | -2.00 | -2.00 | -2.00 |" in text
    assert report.main(["--results", str(tmp_path / "nothing"), "--out", str(out)]) == 2
