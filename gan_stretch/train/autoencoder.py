"""Stage 1: the frame autoencoder, trained on dB frames of every training render."""

from __future__ import annotations

import numpy as np
import torch

from gan_stretch.data.cache import frame_cache
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import GanStretchError
from gan_stretch.models import AutoencoderConfig, FrameAutoencoder
from gan_stretch.models.model_file import Model, model_meta
from gan_stretch.train.common import Run, State, corpora
from gan_stretch.train.losses import MelScale, db_l1, mel_l1
from gan_stretch.train.recipes import AutoencoderRecipe, recipe_source


def train(recipe: AutoencoderRecipe) -> Run:
    sets = corpora(recipe)  # a missing corpus fails before the run folder is made
    run = Run(recipe)
    spec = SpectralConfig(sample_rate=sets[0].sample_rate)
    if any(c.sample_rate != spec.sample_rate for c in sets):
        raise GanStretchError("all corpora of one run must share a sample rate")
    with run.accelerator.main_process_first():  # the main process builds a missing cache, the others read it
        frames = np.concatenate([frame_cache(c, spec, recipe.quiet_db) for c in sets])
    run.print(f"{len(frames)} training frames")

    cfg = AutoencoderConfig(
        n_freq=spec.n_freq, hidden=list(recipe.hidden), latent=recipe.latent, db_range=spec.db_range
    )
    model = FrameAutoencoder(cfg)
    state = State({"autoencoder": model}, {"autoencoder": torch.optim.Adam(model.parameters(), lr=recipe.lr)})
    start = run.register(state)
    model = state.modules["autoencoder"]
    mel = MelScale(spec.sample_rate, spec.n_fft).to(run.device)
    weights = {"loss/linear_db_l1": recipe.linear_weight, "loss/mel_db_l1": recipe.mel_weight}

    def train_step(step: int) -> dict:
        rows = np.sort(run.local(run.rng(step).integers(0, len(frames), recipe.batch_size * run.processes)))
        x = torch.from_numpy(frames[rows].astype(np.float32)).to(run.device)  # [B, F] dB
        y = model(x)
        terms = {"loss/linear_db_l1": db_l1(y, x), "loss/mel_db_l1": mel_l1(mel, y, x)}
        loss = sum(weights[k] * v for k, v in terms.items())
        run.check_finite(step, autoencoder=loss)
        lr, grad_norm = run.optimize("autoencoder", loss, recipe.lr, step)
        return {"loss/total": loss, **terms, "lr": lr, "grad_norm/autoencoder": grad_norm}

    def export() -> Model:  # the autoencoder alone stretches by plain latent interpolation
        ae = run.accelerator.unwrap_model(model)
        meta = {"stage": "autoencoder", "recipe": recipe_source(recipe)}
        return Model("autoencoder", spec, ae, None, model_meta("autoencoder", spec, ae, None, meta))

    run.loop(start, train_step, export)
    return run
