"""Experiments on gan-stretch: scoring (benchmark.py), grids of trained variants (run.py and
recipes/grids/), their reports (study.py, seeds.py, report.py) and the tables they share
(measures.py, results.py, stats.py). Each script runs as ``python -m eval.NAME`` from the project
root or as ``python path/to/eval/NAME.py`` from any folder."""
