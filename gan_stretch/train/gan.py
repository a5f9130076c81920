"""Stage 2b: adversarial latent alignment.

The generator refines time-scaled latents. Two discriminators can push it toward truly stretched
music: one on latent sequences (the design's adversarial latent alignment: real = encodings of
truly stretched audio) and one on the spectrogram users get (residual decoding of the refined
latents against the true frames, conditioned on the time-scaled input). Each is built and trained
only when its weights are non-zero; with none, the run trains the generator alone on the
supervised terms and exports a model of kind ``generator``. The supervised terms (latents and
decoded mel dB, shared with the mapper) anchor the generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from gan_stretch.dsp import timemap
from gan_stretch.models import (
    DiscriminatorConfig,
    GeneratorConfig,
    LatentDiscriminator,
    LatentGenerator,
    SpectrogramDiscriminator,
    SpectrogramDiscriminatorConfig,
)
from gan_stretch.models.model_file import Model, model_meta
from gan_stretch.train import losses
from gan_stretch.train.common import Run, State
from gan_stretch.train.recipes import GanRecipe, recipe_source
from gan_stretch.train.recordings import NaturalnessMonitor, check_recordings
from gan_stretch.train.sequence import residual_output, sequence_stage, supervised_terms


def lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(losses.discriminator_loss(r, f) for r, f in zip(real, fake))


def _maps(scores) -> list[torch.Tensor]:
    """A discriminator's scores as a list of score maps (one map, or one per sub-discriminator)."""
    return scores if isinstance(scores, list) else [scores]


@dataclass
class Adversary:
    """A discriminator that owns its step and its generator terms (as audiocraft's
    ``AdversarialLoss`` does): :meth:`step` trains it on real against fake, :meth:`terms` gives
    the generator its adversarial and feature-matching terms. ``name``: its key in the training
    state and its loss's log name (``loss/NAME``, ``grad_norm/NAME``); ``prefix``: its scores' and
    terms' log names (``d/PREFIXreal``, ``loss/PREFIXadversarial``, ``loss/PREFIXfeature_matching``);
    ``features``: the feature loss (real features, fake features) -> tensor. ``*context``: what
    the discriminator reads beside the sequence (rate, conditioning)."""

    name: str
    prefix: str
    module: torch.nn.Module
    features: Callable

    def step(self, run: Run, step: int, lr: float, real, fake, *context) -> dict:
        d_real, _ = self.module(real, *context)
        d_fake, _ = self.module(fake.detach(), *context)
        d_real, d_fake = _maps(d_real), _maps(d_fake)
        loss = lsgan_d(d_real, d_fake)
        run.check_finite(step, **{self.name: loss})
        grad = run.optimize(self.name, loss, lr, step)[1]
        return {
            f"grad_norm/{self.name}": grad,
            f"loss/{self.name}": loss,
            f"d/{self.prefix}real": sum(x.mean() for x in d_real) / len(d_real),
            f"d/{self.prefix}fake": sum(x.mean() for x in d_fake) / len(d_fake),
        }

    def terms(self, real, fake, *context) -> dict:
        d_fake, f_fake = self.module(fake, *context)
        with torch.no_grad():
            _, f_real = self.module(real, *context)
        return {
            f"loss/{self.prefix}adversarial": sum(losses.generator_loss(x) for x in _maps(d_fake)),
            f"loss/{self.prefix}feature_matching": self.features(f_real, f_fake),
        }


def train(recipe: GanRecipe) -> Run:
    check_recordings(recipe)  # before the run folder is made
    stage = sequence_stage(recipe)
    run, spec, ae, pairs = stage.run, stage.spectral, stage.autoencoder, stage.pairs

    L = ae.cfg.latent_dim
    generator = LatentGenerator(
        GeneratorConfig(
            latent_dim=L,
            channels=recipe.channels,
            kernel=recipe.kernel,
            dilations=list(recipe.dilations),
            frame_features=timemap.FRAME_FEATURES if recipe.frame_features else 0,
        )
    )
    conditional = recipe.d_conditional and recipe.real == "target"
    trained = recipe.discriminators()  # only these are built, optimized and checkpointed
    latent_d, spec_d, rec_d = ("latent" in trained), ("spectrogram" in trained), ("recordings" in trained)
    stage.init_refiner(generator)
    adam = lambda module, lr: torch.optim.Adam(module.parameters(), lr=lr, betas=(0.8, 0.99))
    state = State(
        {"generator": generator, "ema": copy.deepcopy(generator).requires_grad_(False)},
        {"generator": adam(generator, recipe.lr)},
        ema={"ema": "generator"},
    )
    if latent_d:
        discriminator = LatentDiscriminator(
            DiscriminatorConfig(
                latent_dim=L, channels=recipe.d_channels, layers=recipe.d_layers, conditional=conditional
            )
        )
        state.modules["discriminator"] = discriminator
        state.optimizers["discriminator"] = adam(discriminator, recipe.d_lr)
    if spec_d:
        spectrogram_d = SpectrogramDiscriminator(
            SpectrogramDiscriminatorConfig(
                n_freq=spec.n_freq,
                sample_rate=spec.sample_rate,
                channels=recipe.spec_d_channels,
                db_range=spec.db_range,
            )
        )
        state.modules["spectrogram_discriminator"] = spectrogram_d
        state.optimizers["spectrogram_discriminator"] = adam(spectrogram_d, recipe.d_lr)
    recs = None
    if rec_d:  # unpaired, on recordings: a latent discriminator of its own, unconditional (no paired input)
        recs = recorded_latents(recipe, run, spec, ae, pairs)
        rec_discriminator = LatentDiscriminator(
            DiscriminatorConfig(latent_dim=L, channels=recipe.d_channels, layers=recipe.d_layers, conditional=False)
        )
        state.modules["recordings_discriminator"] = rec_discriminator
        state.optimizers["recordings_discriminator"] = adam(rec_discriminator, recipe.d_lr)
    start = run.register(state)
    generator, ema = state.modules["generator"], state.modules["ema"]
    modules = state.modules.get  # each discriminator as the run prepared it (DDP-wrapped where distributed)
    latent = Adversary("discriminator", "", modules("discriminator"), losses.feature_loss) if latent_d else None
    spectral_adv = (
        Adversary("spectrogram_discriminator", "spec_", modules("spectrogram_discriminator"), losses.feature_loss)
        if spec_d
        else None
    )
    recorded = (  # no truth on recordings: adversarial and feature statistics only
        Adversary(
            "recordings_discriminator", "rec_", modules("recordings_discriminator"), losses.feature_statistics_loss
        )
        if rec_d
        else None
    )
    monitor = NaturalnessMonitor(recipe) if recipe.naturalness_every else None
    mel = losses.MelScale(spec.sample_rate, spec.n_fft).to(run.device)
    weights = {
        "loss/latent_l1": recipe.latent_weight,
        "loss/mel_db_l1": recipe.spec_weight,
        "loss/adversarial": recipe.adv_weight,
        "loss/feature_matching": recipe.fm_weight,
        "loss/spec_adversarial": recipe.spec_adv_weight,
        "loss/spec_feature_matching": recipe.spec_fm_weight,
        "loss/rec_adversarial": recipe.rec_adv_weight,
        "loss/rec_feature_matching": recipe.rec_fm_weight,
    }

    def train_step(step: int) -> dict:
        rng = run.rng(step)
        rows, rate = run.sample_rows(pairs, rng, recipe.window)
        src, tgt, rate = pairs.source[rows].to(run.device), pairs.target[rows].to(run.device), rate.to(run.device)
        if recipe.real == "natural":  # unpaired: any music's latents, not the stretch of this input
            real = pairs.target[run.sample_rows(pairs, rng, recipe.window)[0]].to(run.device)
        else:
            real = tgt
        cond = src if conditional else None
        feats = pairs.features[rows].to(run.device) if recipe.frame_features else None
        adversarial = step >= recipe.warmup_steps
        if adversarial and rec_d:
            # a stream of its own: the pairs' batches are those of the same recipe without recordings
            rec_rng = np.random.default_rng([recipe.seed, step, 1])
            real_rows, fake_rows, rec_rate = recs.sample(rec_rng, recipe.rec_batch * run.processes, recipe.window)
            real_rows, fake_rows, rec_rate = run.local(real_rows), run.local(fake_rows), run.local(rec_rate)
            rec_real = recs.real[real_rows].to(run.device)
            rec_src, rec_rate = recs.source[fake_rows].to(run.device), rec_rate.to(run.device)
            rec_feats = recs.features[fake_rows].to(run.device) if recipe.frame_features else None
            # one generator call for both batches (one forward per backward under DDP)
            both = generator(
                torch.cat([src, rec_src]),
                torch.cat([rate, rec_rate]),
                torch.cat([feats, rec_feats]) if feats is not None else None,
            )
            fake, rec_fake = both[: src.shape[0]], both[src.shape[0] :]
        else:
            fake = generator(src, rate, feats)
        scalars = {}
        if adversarial and spec_d:  # what users hear, for a few windows of the batch
            k = min(recipe.spec_d_batch, recipe.batch_size)
            src_db = pairs.source_db[rows[:k]].to(run.device).float()
            tgt_db = pairs.target_db[rows[:k]].to(run.device).float()
            out_db = residual_output(ae, fake[:k], src[:k], src_db)

        # Discriminator steps, then the generator's: every term keyed by its log name, weighted by
        # the recipe's weight of that name
        if adversarial and latent:
            scalars.update(latent.step(run, step, recipe.d_lr, real, fake, rate, cond))
        if adversarial and spectral_adv:
            scalars.update(spectral_adv.step(run, step, recipe.d_lr, tgt_db, out_db, rate[:k], src_db))
        if adversarial and recorded:
            # the real windows are given the fakes' rates: the rate channel tells D nothing of which is which
            scalars.update(recorded.step(run, step, recipe.d_lr, rec_real, rec_fake, rec_rate))
        terms = supervised_terms(recipe, ae, mel, pairs, rows, fake, src, tgt, rng)
        if adversarial and latent:
            terms.update(latent.terms(real, fake, rate, cond))
        if adversarial and spectral_adv:
            terms.update(spectral_adv.terms(tgt_db, out_db, rate[:k], src_db))
        if adversarial and recorded:
            terms.update(recorded.terms(rec_real, rec_fake, rec_rate))
        loss_g = sum(weights[name] * value for name, value in terms.items())
        run.check_finite(step, generator=loss_g)
        lr, scalars["grad_norm/generator"] = run.optimize("generator", loss_g, recipe.lr, step)
        run.update_ema(recipe.ema_decay)
        with torch.no_grad():  # collapse watch: spread of generated latents against real ones (1 = same spread)
            spread = fake.std(dim=(0, 1)).mean() / real.std(dim=(0, 1)).mean().clamp_min(1e-8)
        scalars.update({"loss/total": loss_g, **terms, "lr": lr, "g/latent_spread": spread})
        if monitor is not None and (step + 1) % recipe.naturalness_every == 0:
            monitor(run, export(), step + 1)
        return scalars

    kind = "gan" if trained else "generator"  # a model file named for what trained it

    def export() -> Model:
        meta = {
            "stage": "gan",
            "transients": recipe.transients,
            "decays_in_training": recipe.decays,
            "attack_span_in_training": list(recipe.attack_span),
            "recipe": recipe_source(recipe),
        }
        refiner, blend = stage.exported(ema)
        return Model(kind, spec, ae, refiner, model_meta(kind, spec, ae, refiner, {**meta, **blend}))

    run.loop(start, train_step, export)
    return run


def recorded_latents(recipe: GanRecipe, run: Run, spec, ae, pairs):
    """The training-split recordings of ``recipe.recordings`` through the frozen autoencoder
    (cached beside the corpus, built by the main process), time-scaled at the training pairs' rates."""
    from gan_stretch.data.cache import file_digest, recording_cache
    from gan_stretch.data.manifest import Corpus

    corpus = Corpus(recipe.recordings)
    with run.accelerator.main_process_first():
        recs = recording_cache(
            corpus,
            SimpleNamespace(spectral=spec, autoencoder=ae),
            file_digest(recipe.autoencoder),
            sorted(set(pairs.rates.tolist())),
            transients=recipe.transients,
            span=tuple(recipe.attack_span),
            features=recipe.frame_features,
        )
    run.print(
        f"{len(recs.items)} training excerpts of {len(recs.recordings)} recordings for the unpaired discriminator"
    )
    return recs
