"""Training entry point: ``accelerate launch -m gan_stretch.train RECIPE.yaml [key=value ...]``."""

from __future__ import annotations

from importlib import import_module

from gan_stretch.train.recipes import load_recipe
from gan_stretch.train.stages import STAGES


def run(recipe_path, overrides=()):
    recipe = load_recipe(recipe_path, list(overrides))
    return import_module(f"{__name__}.{STAGES[recipe.stage].trainer}").train(recipe)
