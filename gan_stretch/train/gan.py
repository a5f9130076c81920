"""Stage 2b: adversarial latent alignment.

The generator refines time-scaled latents. Two discriminators can push it toward truly stretched
music: one on latent sequences (the design's adversarial latent alignment: real = encodings of
truly stretched audio) and one on the spectrogram users get (residual decoding of the refined
latents against the true frames, conditioned on the time-scaled input). Each is on when its
weights are. The supervised terms (latents and decoded mel dB, shared with the mapper) anchor
the generator.
"""
from __future__ import annotations

import copy

import torch

from .. import losses
from ..config import GanRecipe, recipe_source
from ..models import (DiscriminatorConfig, GeneratorConfig, LatentDiscriminator, LatentGenerator,
                      SpectrogramDiscriminator, SpectrogramDiscriminatorConfig)
from ..model import Model, model_meta
from .common import Run, init_refiner, residual_output, sequence_stage, supervised_terms


def lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(losses.discriminator_loss(r, f) for r, f in zip(real, fake))


def train(recipe: GanRecipe) -> Run:
    run, spec, ae, pairs, init = sequence_stage(recipe)

    L = ae.cfg.latent_dim
    generator = LatentGenerator(GeneratorConfig(latent_dim=L, channels=recipe.channels, kernel=recipe.kernel,
                                                dilations=list(recipe.dilations)))
    conditional = recipe.d_conditional and recipe.real == "target"
    latent_d = recipe.adv_weight + recipe.fm_weight > 0
    spec_d = recipe.spec_adv_weight + recipe.spec_fm_weight > 0
    discriminator = LatentDiscriminator(DiscriminatorConfig(latent_dim=L, channels=recipe.d_channels,
                                                            layers=recipe.d_layers, conditional=conditional))
    spectrogram_d = SpectrogramDiscriminator(SpectrogramDiscriminatorConfig(
        n_freq=spec.n_freq, sample_rate=spec.sample_rate, channels=recipe.spec_d_channels, db_range=spec.db_range))
    init_refiner(run, recipe, init, generator)
    ema = copy.deepcopy(generator).requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=recipe.lr, betas=(0.8, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=recipe.d_lr, betas=(0.8, 0.99))
    opt_s = torch.optim.Adam(spectrogram_d.parameters(), lr=recipe.d_lr, betas=(0.8, 0.99))
    modules = {"generator": generator, "discriminator": discriminator, "ema": ema}
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    if spec_d:  # only then in the checkpoint: runs without it resume as before
        modules["spectrogram_discriminator"] = spectrogram_d
        optimizers["spectrogram_discriminator"] = opt_s
    start = run.resume(modules, optimizers)
    generator, discriminator, opt_g, opt_d = run.accelerator.prepare(generator, discriminator, opt_g, opt_d)
    if spec_d:
        spectrogram_d, opt_s = run.accelerator.prepare(spectrogram_d, opt_s)
    ema.to(run.device)
    modules = {"generator": generator, "discriminator": discriminator, "ema": ema,
               **({"spectrogram_discriminator": spectrogram_d} if spec_d else {})}
    mel = losses.MelScale(spec.sample_rate, spec.n_fft).to(run.device)
    weights = {"loss/latent_l1": recipe.latent_weight, "loss/mel_db_l1": recipe.spec_weight,
               "loss/adversarial": recipe.adv_weight, "loss/feature_matching": recipe.fm_weight,
               "loss/spec_adversarial": recipe.spec_adv_weight, "loss/spec_feature_matching": recipe.spec_fm_weight}

    def train_step(step: int) -> dict:
        rng = run.rng(step)
        rows, rate = pairs.sample_rows(rng, recipe.batch_size, recipe.window)
        src, tgt, rate = pairs.source[rows].to(run.device), pairs.target[rows].to(run.device), rate.to(run.device)
        if recipe.real == "natural":  # unpaired: any music's latents, not the stretch of this input
            real = pairs.target[pairs.sample_rows(rng, recipe.batch_size, recipe.window)[0]].to(run.device)
        else:
            real = tgt
        cond = src if conditional else None
        fake = generator(src, rate)
        adversarial = step >= recipe.warmup_steps
        scalars = {}
        if adversarial and spec_d:  # what users hear, for a few windows of the batch
            k = min(recipe.spec_d_batch, recipe.batch_size)
            src_db = pairs.source_db[rows[:k]].to(run.device).float()
            tgt_db = pairs.target_db[rows[:k]].to(run.device).float()
            out_db = residual_output(ae, fake[:k], src[:k], src_db)

        # Discriminator steps
        if adversarial and latent_d:
            d_real, _ = discriminator(real, rate, cond)
            d_fake, _ = discriminator(fake.detach(), rate, cond)
            loss_d = losses.discriminator_loss(d_real, d_fake)
            run.check_finite(step, discriminator=loss_d)
            scalars["grad_norm/discriminator"] = run.optimize(opt_d, loss_d, discriminator.parameters(), recipe.d_lr,
                                                              step)[1]
            scalars.update({"loss/discriminator": loss_d.item(), "d/real": d_real.mean().item(),
                            "d/fake": d_fake.mean().item()})
        if adversarial and spec_d:
            s_real, _ = spectrogram_d(tgt_db, rate[:k], src_db)
            s_fake, _ = spectrogram_d(out_db.detach(), rate[:k], src_db)
            loss_s = lsgan_d(s_real, s_fake)
            run.check_finite(step, spectrogram_discriminator=loss_s)
            scalars["grad_norm/spectrogram_discriminator"] = run.optimize(
                opt_s, loss_s, spectrogram_d.parameters(), recipe.d_lr, step)[1]
            scalars.update({"loss/spectrogram_discriminator": loss_s.item(),
                            "d/spec_real": sum(x.mean() for x in s_real).item() / len(s_real),
                            "d/spec_fake": sum(x.mean() for x in s_fake).item() / len(s_fake)})

        # Generator step: every term keyed by its log name, weighted by the recipe's weight of that name
        terms = supervised_terms(recipe, ae, mel, pairs, rows, fake, src, tgt, rng)
        if adversarial and latent_d:
            d_fake, f_fake = discriminator(fake, rate, cond)
            with torch.no_grad():
                _, f_real = discriminator(real, rate, cond)
            terms["loss/adversarial"] = losses.generator_loss(d_fake)
            terms["loss/feature_matching"] = losses.feature_loss(f_real, f_fake)
        if adversarial and spec_d:
            s_fake, g_fake = spectrogram_d(out_db, rate[:k], src_db)
            with torch.no_grad():
                _, g_real = spectrogram_d(tgt_db, rate[:k], src_db)
            terms["loss/spec_adversarial"] = sum(losses.generator_loss(x) for x in s_fake)
            terms["loss/spec_feature_matching"] = losses.feature_loss(g_real, g_fake)
        loss_g = sum(weights[name] * value for name, value in terms.items())
        run.check_finite(step, generator=loss_g)
        lr, scalars["grad_norm/generator"] = run.optimize(opt_g, loss_g, generator.parameters(), recipe.lr, step)
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), run.accelerator.unwrap_model(generator).parameters()):
                p_ema.lerp_(p, 1 - recipe.ema_decay)
            # collapse watch: spread of generated latents against real ones (1 = same spread)
            spread = (fake.std(dim=(0, 1)).mean() / real.std(dim=(0, 1)).mean().clamp_min(1e-8)).item()
        scalars.update({"loss/total": loss_g.item(), **{k: v.item() for k, v in terms.items()}, "lr": lr,
                        "g/latent_spread": spread})
        return scalars

    def export() -> Model:
        meta = {"stage": "gan", "transients": recipe.transients, "recipe": recipe_source(recipe)}
        return Model("gan", spec, ae, ema, model_meta("gan", spec, ae, ema, meta))

    run.loop(start, train_step, modules, optimizers, export)
    return run
