"""The training stages, declared once.

Each stage names its recipe (the settings a run of it accepts), the module whose ``train(recipe)``
runs it and the kinds of the model files it exports (gan_stretch.models.registry builds their
refiners): the name of the stage, or for the gan stage ``generator`` when it trains no
discriminator. Adding a stage means one entry here, its recipe class in recipes.py (listed in
``recipes.RECIPES``, which load_recipe reads) and its ``train`` module.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_stretch.models.registry import REFINERS
from gan_stretch.train.recipes import RECIPES, Recipe


@dataclass(frozen=True)
class Stage:
    recipe: type[Recipe]
    trainer: str  # the module (in gan_stretch.train) whose train(recipe) runs the stage
    kinds: tuple[str, ...] = ()  # the kinds of the model files it exports (keys of REFINERS)

    def __post_init__(self):
        assert set(self.kinds) <= set(REFINERS), f"model kinds without a refiner entry: {self.kinds}"


STAGES: dict[str, Stage] = {
    "autoencoder": Stage(RECIPES["autoencoder"], "autoencoder", ("autoencoder",)),
    "mapper": Stage(RECIPES["mapper"], "mapper", ("mapper",)),
    "gan": Stage(RECIPES["gan"], "gan", ("gan", "generator")),
}
MODEL_KINDS: dict[str, str] = {kind: name for name, stage in STAGES.items() for kind in stage.kinds}  # kind -> stage
