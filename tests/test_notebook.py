"""notebooks/results.ipynb runs top to bottom on a tiny results folder written by the benchmark."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts a Jupyter kernel
def test_results_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from eval.benchmark import write_table

    run = tmp_path / "results" / "tiny"
    run.mkdir(parents=True)
    rows = [
        {
            "piece": f"p{i}",
            "program": 0,
            "method": m,
            "rate": r,
            "logmel_db": 3.0 + i + (m == "pv"),
            "visqol": 4.0 - 0.1 * i,
            "attack_db": -1.0,
            "smear_db": float("nan") if m == "pv" else 2.0,
            "oversmoothing_db": -0.5,
            "two_sample_accuracy": 0.6,
            "spectral_convergence": 0.5,
            "mrstft": 0.4,
            "duration_error_ms": 0.0,
            "pitch_cents": 0.1,
            "realtime_factor": 10.0,
        }
        for i in range(2)
        for m in ("gan", "pv")
        for r in (0.5, 2.0)
    ]
    with open(run / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (run / "table.md").write_text(write_table(rows))
    # recorded music (no truth): one run among the results, with its per-recording naturalness.csv,
    # and one named by GAN_STRETCH_RECORDED with results.csv alone
    for folder, per_recording in ((tmp_path / "results" / "recorded", True), (tmp_path / "heldout", False)):
        folder.mkdir(parents=True)
        rec = [
            {
                "piece": f"r{i}-x0",
                "recording": f"r{i}",
                "style": "orchestral",
                "sample_rate": 44100,
                "method": m,
                "rate": r,
                "duration_error_ms": 0.0,
                "pitch_cents": 0.0,
                "round_trip_db": 2.0 + (m == "default") + i,
                "level_change_db": -1.0,
                "naturalness": 0.5 + 0.1 * (m == "default") + 0.05 * r,
                "realtime_factor": 0.1,
            }
            for i in range(2)
            for m in ("default", "wsola")
            for r in (0.5, 2.0)
        ]
        with open(folder / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rec[0]))
            w.writeheader()
            w.writerows(rec)
        if per_recording:
            with open(folder / "naturalness.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["method", "rate", "recording", "naturalness"])
                w.writeheader()
                w.writerows({k: r[k] for k in ("method", "rate", "recording", "naturalness")} for r in rec)
        (folder / "table.md").write_text(f"# {folder.name}\n\n" + write_table(rec, "naturalness"))
    monkeypatch.setenv("GAN_STRETCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GAN_STRETCH_RECORDED", str(tmp_path / "heldout"))
    nb = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "1 result folder(s)" in text and "2 of recorded music" in text
    shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "| gan | 3.50 | 3.50 | 3.50 |" in shown  # the table, with the means of the two pieces
    assert "# recorded" in shown and "# heldout" in shown  # each recorded run's table.md
    assert "| default | 0.62 | 0.70 | 0.66 |" in shown
    # per-measure curves and the distortion-perception plane; per recorded run, naturalness per rate
    # and naturalness against the round trip
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2 + 2
    assert "no study in" in text or "adversarial study" in shown
