"""notebooks/results.ipynb runs top to bottom on a tiny results folder written by the benchmark."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from test_training import RECIPES  # noqa: F401  (keeps the tests folder importable the same way)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts a Jupyter kernel
def test_results_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    import sys

    sys.path.insert(0, str(ROOT / "eval"))
    from benchmark import write_table

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
    monkeypatch.setenv("GAN_STRETCH_RESULTS", str(tmp_path / "results"))
    nb = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "1 result folder(s)" in text
    shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "| gan | 3.50 | 3.50 | 3.50 |" in shown  # the table, with the means of the two pieces
    # per-measure curves and the distortion-perception plane
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert "no study in" in text or "adversarial study" in shown
