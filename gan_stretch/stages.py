"""The training stages, declared once.

Each stage names its recipe (the settings a run of it accepts), the module whose ``train(recipe)``
runs it, and the refiner that the model files it exports hold; a model file's ``kind`` is the name
of the stage that made it. Adding a stage means one entry here, its recipe class in config.py and
its ``train`` module.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .config import AutoencoderRecipe, GanRecipe, MapperRecipe, Recipe
from .models import GeneratorConfig, LatentGenerator, MapperConfig, StretchMapper


@dataclass(frozen=True)
class Stage:
    recipe: type[Recipe]
    trainer: str  # the module (in gan_stretch.train) whose train(recipe) runs the stage
    refiner: tuple[type, type[nn.Module]] | None = None  # (config, module) its model files refine latents with

    def build_refiner(self, cfg: dict) -> nn.Module | None:
        """The refiner of a model file of this stage, from its config dict (None: the autoencoder alone)."""
        if self.refiner is None:
            return None
        config, module = self.refiner
        return module(config(**cfg))


STAGES: dict[str, Stage] = {
    "autoencoder": Stage(AutoencoderRecipe, "autoencoder"),
    "mapper": Stage(MapperRecipe, "mapper", (MapperConfig, StretchMapper)),
    "gan": Stage(GanRecipe, "gan", (GeneratorConfig, LatentGenerator)),
}
