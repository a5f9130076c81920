"""The training command of a grid's runs (eval/run.py, eval/recorded_study.py)."""

from __future__ import annotations

import sys


def train_command(accelerate_config: str, recipe: str, *overrides: str) -> list[str]:
    """The command that trains ``recipe`` (a recipe file) with ``overrides`` (key=value) under
    ``accelerate launch --config_file accelerate_config``, in this Python."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        accelerate_config,
        "-m",
        "gan_stretch.train",
        recipe,
        *overrides,
    ]
