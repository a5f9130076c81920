"""Stage 2a: the stretch mapper baseline, supervised on cached latent pairs."""
from __future__ import annotations

import torch

from ..config import MapperRecipe, recipe_source
from ..losses import MelScale
from ..models import MapperConfig, StretchMapper
from ..model import Model, model_meta
from .common import Run, init_refiner, sequence_stage, supervised_terms


def train(recipe: MapperRecipe) -> Run:
    run, spec, ae, pairs, init = sequence_stage(recipe)

    mapper = StretchMapper(MapperConfig(latent_dim=ae.cfg.latent_dim, hidden=recipe.hidden))
    init_refiner(run, recipe, init, mapper)
    optimizer = torch.optim.Adam(mapper.parameters(), lr=recipe.lr)
    start = run.resume({"mapper": mapper}, {"mapper": optimizer})
    mapper, optimizer = run.accelerator.prepare(mapper, optimizer)
    mel = MelScale(spec.sample_rate, spec.n_fft).to(run.device)

    def train_step(step: int) -> dict:
        rng = run.rng(step)
        rows, rate = pairs.sample_rows(rng, recipe.batch_size, recipe.window)
        src, tgt, rate = pairs.source[rows].to(run.device), pairs.target[rows].to(run.device), rate.to(run.device)
        pred = mapper(src, rate)
        terms = supervised_terms(recipe, ae, mel, pairs, rows, pred, src, tgt, rng)
        weights = {"loss/latent_l1": recipe.latent_weight, "loss/mel_db_l1": recipe.spec_weight}
        loss = sum(weights[k] * v for k, v in terms.items())
        run.check_finite(step, mapper=loss)
        lr, grad_norm = run.optimize(optimizer, loss, mapper.parameters(), recipe.lr, step)
        return {"loss/total": loss.item(), **{k: v.item() for k, v in terms.items()}, "lr": lr,
                "grad_norm/mapper": grad_norm}

    def export() -> Model:
        m = run.accelerator.unwrap_model(mapper)
        meta = {"stage": "mapper", "transients": recipe.transients, "recipe": recipe_source(recipe)}
        return Model("mapper", spec, ae, m, model_meta("mapper", spec, ae, m, meta))

    run.loop(start, train_step, {"mapper": mapper}, {"mapper": optimizer}, export)
    return run
