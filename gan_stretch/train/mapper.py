"""Stage 2a: the stretch mapper baseline, supervised on cached latent pairs."""

from __future__ import annotations

import torch

from gan_stretch.models import MapperConfig, StretchMapper
from gan_stretch.models.model_file import Model, model_meta
from gan_stretch.train.common import Run, State
from gan_stretch.train.losses import MelScale
from gan_stretch.train.recipes import MapperRecipe, recipe_source
from gan_stretch.train.sequence import sequence_stage, supervised_terms


def train(recipe: MapperRecipe) -> Run:
    stage = sequence_stage(recipe)
    run, spec, ae, pairs = stage.run, stage.spectral, stage.autoencoder, stage.pairs

    mapper = StretchMapper(MapperConfig(latent_dim=ae.cfg.latent_dim, hidden=recipe.hidden))
    stage.init_refiner(mapper)
    state = State({"mapper": mapper}, {"mapper": torch.optim.Adam(mapper.parameters(), lr=recipe.lr)})
    start = run.register(state)
    mapper = state.modules["mapper"]
    mel = MelScale(spec.sample_rate, spec.n_fft).to(run.device)
    weights = {"loss/latent_l1": recipe.latent_weight, "loss/mel_db_l1": recipe.spec_weight}

    def train_step(step: int) -> dict:
        rng = run.rng(step)
        rows, rate = run.sample_rows(pairs, rng, recipe.window)
        src, tgt, rate = pairs.source[rows].to(run.device), pairs.target[rows].to(run.device), rate.to(run.device)
        pred = mapper(src, rate)
        terms = supervised_terms(recipe, ae, mel, pairs, rows, pred, src, tgt, rng)
        loss = sum(weights[k] * v for k, v in terms.items())
        run.check_finite(step, mapper=loss)
        lr, grad_norm = run.optimize("mapper", loss, recipe.lr, step)
        return {"loss/total": loss, **terms, "lr": lr, "grad_norm/mapper": grad_norm}

    def export() -> Model:
        m = run.accelerator.unwrap_model(mapper)
        meta = {
            "stage": "mapper",
            "transients": recipe.transients,
            "decays_in_training": recipe.decays,
            "attack_span_in_training": list(recipe.attack_span),
            "recipe": recipe_source(recipe),
        }
        refiner, blend = stage.exported(m)
        return Model("mapper", spec, ae, refiner, model_meta("mapper", spec, ae, refiner, {**meta, **blend}))

    run.loop(start, train_step, export)
    return run
