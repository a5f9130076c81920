"""The ``gan-stretch`` command: stretch, data and train."""

from gan_stretch.cli.main import main

__all__ = ["main"]
