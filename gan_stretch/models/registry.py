"""The refiners, by the kind of model file that holds them.

A model file's kind names the stage that made it (gan_stretch.train.stages): ``autoencoder`` (no
refiner), ``mapper`` (the stretch mapper), ``generator`` (a gan-stage run without discriminators)
and ``gan`` (with them; files written before ``generator`` existed say ``gan`` for both). Adding a
kind of model file means one entry here.
"""

from __future__ import annotations

from torch import nn

from gan_stretch.models.generator import GeneratorConfig, LatentGenerator
from gan_stretch.models.mapper import MapperConfig, StretchMapper

REFINERS: dict[str, tuple[type, type[nn.Module]] | None] = {  # kind -> (config, module) or None
    "autoencoder": None,
    "mapper": (MapperConfig, StretchMapper),
    "gan": (GeneratorConfig, LatentGenerator),
    "generator": (GeneratorConfig, LatentGenerator),
}
KINDS = tuple(REFINERS)


def build_refiner(kind: str, cfg: dict) -> nn.Module | None:
    """The refiner of a ``kind`` model file from its config dict (None for an autoencoder alone)."""
    if REFINERS[kind] is None:
        return None
    config, module = REFINERS[kind]
    return module(config(**cfg))
