"""What the scripts that train recipes (ablations.py, study.py) share: the training command."""

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
