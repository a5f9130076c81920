"""Training entry point: ``accelerate launch -m gan_stretch.train RECIPE.yaml [key=value ...]``."""
from __future__ import annotations

from ..config import load_recipe


def run(recipe_path, overrides=()):
    recipe = load_recipe(recipe_path, list(overrides))
    if recipe.stage == "autoencoder":
        from .autoencoder import train
    elif recipe.stage == "mapper":
        from .mapper import train
    else:
        from .gan import train
    return train(recipe)
