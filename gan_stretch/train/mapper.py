"""Stage 2a: the stretch mapper baseline, supervised on cached latent pairs."""
from __future__ import annotations

import torch

from ..config import MapperRecipe, recipe_source
from ..losses import MelScale, decoded_mel_l1
from ..models import MapperConfig, StretchMapper
from ..pipeline import Model, model_meta
from .common import Run, init_refiner, sequence_stage, spec_rows


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
        src, tgt, rate = (t.to(run.device) for t in pairs.sample(rng, recipe.batch_size, recipe.window))
        pred = mapper(src, rate)
        loss_lat = (pred - tgt).abs().mean()
        loss_spec = decoded_mel_l1(mel, ae.decode, pred, tgt, spec_rows(rng, recipe))
        loss = recipe.latent_weight * loss_lat + recipe.spec_weight * loss_spec
        run.check_finite(step, mapper=loss)
        lr = run.optimize(optimizer, loss, mapper.parameters(), recipe.lr, step)
        return {"loss/total": loss.item(), "loss/latent_l1": loss_lat.item(), "loss/mel_db_l1": loss_spec.item(),
                "lr": lr}

    def export() -> Model:
        m = run.accelerator.unwrap_model(mapper)
        meta = {"stage": "mapper", "transients": recipe.transients, "recipe": recipe_source(recipe)}
        return Model("mapper", spec, ae, m, model_meta("mapper", spec, ae, m, meta))

    run.loop(start, train_step, {"mapper": mapper}, {"mapper": optimizer}, export)
    return run
