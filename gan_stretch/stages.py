"""The training stages, declared once.

Each stage names its recipe (the settings a run of it accepts), the module whose ``train(recipe)``
runs it, the refiner that the model files it exports hold and the kinds of those files: the name
of the stage, or for the gan stage ``generator`` when it trains no discriminator (files written
before that kind existed say ``gan`` for both). Adding a stage means one entry here, its recipe
class in config.py (listed in ``config.RECIPES``, which load_recipe reads: config.py sits below
this module and the networks) and its ``train`` module.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .config import RECIPES, Recipe
from .models import GeneratorConfig, LatentGenerator, MapperConfig, StretchMapper


@dataclass(frozen=True)
class Stage:
    recipe: type[Recipe]
    trainer: str  # the module (in gan_stretch.train) whose train(recipe) runs the stage
    refiner: tuple[type, type[nn.Module]] | None = None  # (config, module) its model files refine latents with
    kinds: tuple[str, ...] = ()  # the kinds of the model files it exports

    def build_refiner(self, cfg: dict) -> nn.Module | None:
        """The refiner of a model file of this stage, from its config dict (None: the autoencoder alone)."""
        if self.refiner is None:
            return None
        config, module = self.refiner
        return module(config(**cfg))


STAGES: dict[str, Stage] = {
    "autoencoder": Stage(RECIPES["autoencoder"], "autoencoder", kinds=("autoencoder",)),
    "mapper": Stage(RECIPES["mapper"], "mapper", (MapperConfig, StretchMapper), ("mapper",)),
    "gan": Stage(RECIPES["gan"], "gan", (GeneratorConfig, LatentGenerator), ("gan", "generator")),
}
MODEL_KINDS: dict[str, str] = {kind: name for name, stage in STAGES.items() for kind in stage.kinds}  # kind -> stage
