"""Stage 2b: adversarial latent alignment.

The generator refines time-scaled latents; a discriminator on latent sequences tells them from
the encodings of truly stretched audio. A supervised term (latents and decoded mel dB) anchors
the generator, the adversarial and feature-matching terms push it toward real stretched music.
"""
from __future__ import annotations

import copy


import torch

from .. import losses
from ..config import GanRecipe, recipe_source
from ..models import DiscriminatorConfig, GeneratorConfig, LatentDiscriminator, LatentGenerator
from ..pipeline import Model, model_meta
from .common import Run, init_refiner, sequence_stage, spec_rows


def train(recipe: GanRecipe) -> Run:
    run, spec, ae, pairs, init = sequence_stage(recipe)

    L = ae.cfg.latent_dim
    generator = LatentGenerator(GeneratorConfig(latent_dim=L, channels=recipe.channels, kernel=recipe.kernel,
                                                dilations=list(recipe.dilations)))
    conditional = recipe.d_conditional and recipe.real == "target"
    discriminator = LatentDiscriminator(DiscriminatorConfig(latent_dim=L, channels=recipe.d_channels,
                                                            layers=recipe.d_layers, conditional=conditional))
    init_refiner(run, recipe, init, generator)
    ema = copy.deepcopy(generator).requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=recipe.lr, betas=(0.8, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=recipe.d_lr, betas=(0.8, 0.99))
    modules = {"generator": generator, "discriminator": discriminator, "ema": ema}
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    start = run.resume(modules, optimizers)
    generator, discriminator, opt_g, opt_d = run.accelerator.prepare(generator, discriminator, opt_g, opt_d)
    ema.to(run.device)
    modules = {"generator": generator, "discriminator": discriminator, "ema": ema}
    mel = losses.MelScale(spec.sample_rate, spec.n_fft).to(run.device)

    def train_step(step: int) -> dict:
        rng = run.rng(step)
        src, tgt, rate = (t.to(run.device) for t in pairs.sample(rng, recipe.batch_size, recipe.window))
        if recipe.real == "natural":  # unpaired: any music's latents, not the stretch of this input
            real = pairs.sample(rng, recipe.batch_size, recipe.window)[1].to(run.device)
        else:
            real = tgt
        cond = src if conditional else None
        fake = generator(src, rate)
        adversarial = step >= recipe.warmup_steps and recipe.adv_weight + recipe.fm_weight > 0
        scalars = {}

        # Discriminator step
        if adversarial:
            d_real, _ = discriminator(real, rate, cond)
            d_fake, _ = discriminator(fake.detach(), rate, cond)
            loss_d = losses.discriminator_loss(d_real, d_fake)
            run.check_finite(step, discriminator=loss_d)
            run.optimize(opt_d, loss_d, discriminator.parameters(), recipe.d_lr, step)
            scalars.update({"loss/discriminator": loss_d.item(), "d/real": d_real.mean().item(),
                            "d/fake": d_fake.mean().item()})

        # Generator step
        loss_lat = (fake - tgt).abs().mean()
        loss_spec = losses.decoded_mel_l1(mel, ae.decode, fake, tgt, spec_rows(rng, recipe))
        loss_g = recipe.latent_weight * loss_lat + recipe.spec_weight * loss_spec
        if adversarial:
            d_fake, f_fake = discriminator(fake, rate, cond)
            with torch.no_grad():
                _, f_real = discriminator(real, rate, cond)
            loss_adv, loss_fm = losses.generator_loss(d_fake), losses.feature_loss(f_real, f_fake)
            loss_g = loss_g + recipe.adv_weight * loss_adv + recipe.fm_weight * loss_fm
            scalars.update({"loss/adversarial": loss_adv.item(), "loss/feature_matching": loss_fm.item()})
        run.check_finite(step, generator=loss_g)
        lr = run.optimize(opt_g, loss_g, generator.parameters(), recipe.lr, step)
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), run.accelerator.unwrap_model(generator).parameters()):
                p_ema.lerp_(p, 1 - recipe.ema_decay)
            # collapse watch: spread of generated latents against real ones (1 = same spread)
            spread = (fake.std(dim=(0, 1)).mean() / real.std(dim=(0, 1)).mean().clamp_min(1e-8)).item()
        scalars.update({"loss/total": loss_g.item(), "loss/latent_l1": loss_lat.item(),
                        "loss/mel_db_l1": loss_spec.item(), "lr": lr, "g/latent_spread": spread})
        return scalars

    def export() -> Model:
        meta = {"stage": "gan", "transients": recipe.transients, "recipe": recipe_source(recipe)}
        return Model("gan", spec, ae, ema, model_meta("gan", spec, ae, ema, meta))

    run.loop(start, train_step, modules, optimizers, export)
    return run



