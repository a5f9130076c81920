"""The ablations: recipes/grids/ablations.yaml through eval/run.py (the grid declares the variants).

python eval/ablations.py [--dry-run] [--no-train] [--report-only] [-j N]
python -m eval.run recipes/grids/ablations.yaml ...     (the same)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as python eval/NAME.py from any folder: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = "recipes/grids/ablations.yaml"


def main(argv=None) -> int:
    from eval import run

    return run.main([str(Path(__file__).resolve().parents[1] / GRID), *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
