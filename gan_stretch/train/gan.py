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
from gan_stretch.train.sequence import SequenceStage, residual_output, sequence_stage, supervised_terms


def lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(losses.discriminator_loss(r, f) for r, f in zip(real, fake))


def score_maps(scores) -> list[torch.Tensor]:
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
        d_real, d_fake = score_maps(d_real), score_maps(d_fake)
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
            f"loss/{self.prefix}adversarial": sum(losses.generator_loss(x) for x in score_maps(d_fake)),
            f"loss/{self.prefix}feature_matching": self.features(f_real, f_fake),
        }


ADAM_BETAS = (0.8, 0.99)


def adam(module: torch.nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=ADAM_BETAS)


def build_generator(recipe: GanRecipe, latent_dim: int) -> LatentGenerator:
    return LatentGenerator(
        GeneratorConfig(
            latent_dim=latent_dim,
            channels=recipe.channels,
            kernel=recipe.kernel,
            dilations=list(recipe.dilations),
            frame_features=timemap.FRAME_FEATURES if recipe.frame_features else 0,
        )
    )


def latent_discriminator(recipe: GanRecipe, latent_dim: int, conditional: bool) -> LatentDiscriminator:
    cfg = DiscriminatorConfig(
        latent_dim=latent_dim, channels=recipe.d_channels, layers=recipe.d_layers, conditional=conditional
    )
    return LatentDiscriminator(cfg)


def spectrogram_discriminator(
    recipe: GanRecipe, spec, conditional: bool, delta: float, relative: bool = False
) -> SpectrogramDiscriminator:
    cfg = SpectrogramDiscriminatorConfig(
        n_freq=spec.n_freq,
        sample_rate=spec.sample_rate,
        channels=recipe.spec_d_channels,
        conditional=conditional,
        db_range=spec.db_range,
        delta=delta,
        relative=relative,
    )
    return SpectrogramDiscriminator(cfg)


def recordings_discriminator(recipe: GanRecipe, spec, latent_dim: int) -> torch.nn.Module:
    """The unpaired discriminator on recordings: unconditional (no paired input), on latents or,
    with ``rec_view=spectrogram``, on dB frames with the change plane ``rec_delta``."""
    if recipe.rec_view == "spectrogram":
        return spectrogram_discriminator(recipe, spec, False, recipe.rec_delta, recipe.rec_relative)
    return latent_discriminator(recipe, latent_dim, False)


def add_discriminators(recipe: GanRecipe, state: State, spec, latent_dim: int, conditional: bool) -> None:
    """Builds, in this order (their initialisations draw from torch's generator one after the
    other), the discriminators whose weights are non-zero, each with its optimizer, into
    ``state``."""
    trained = recipe.discriminators()
    built = {}
    if "latent" in trained:
        built["discriminator"] = latent_discriminator(recipe, latent_dim, conditional)
    if "spectrogram" in trained:
        built["spectrogram_discriminator"] = spectrogram_discriminator(recipe, spec, True, recipe.spec_delta)
    if "recordings" in trained:
        built["recordings_discriminator"] = recordings_discriminator(recipe, spec, latent_dim)
    for name, module in built.items():
        state.modules[name] = module
        state.optimizers[name] = adam(module, recipe.d_lr)


# each discriminator's log prefix and feature loss (no truth on recordings: feature statistics only)
ADVERSARIES = {
    "discriminator": ("", losses.feature_loss),
    "spectrogram_discriminator": ("spec_", losses.feature_loss),
    "recordings_discriminator": ("rec_", losses.feature_statistics_loss),
}


def adversaries(state: State) -> dict[str, Adversary]:
    """The discriminators of ``state`` (as the run prepared them: DDP-wrapped where distributed)."""
    return {
        name: Adversary(name, prefix, state.modules[name], features)
        for name, (prefix, features) in ADVERSARIES.items()
        if name in state.modules
    }


@dataclass
class Batch:
    """One step's windows of the training pairs."""

    rng: np.random.Generator
    rows: np.ndarray
    src: torch.Tensor  # time-scaled latents of the input
    tgt: torch.Tensor  # latents of the true stretch
    rate: torch.Tensor
    real: torch.Tensor  # what the latent discriminator sees as real: tgt, or other music's latents
    cond: torch.Tensor | None  # the conditioning of a conditional latent discriminator
    feats: torch.Tensor | None  # the plan's per-frame features


def sample_batch(run: Run, recipe: GanRecipe, pairs, step: int, conditional: bool) -> Batch:
    rng = run.rng(step)
    rows, rate = run.sample_rows(pairs, rng, recipe.window)
    src, tgt, rate = pairs.source[rows].to(run.device), pairs.target[rows].to(run.device), rate.to(run.device)
    if recipe.real == "natural":  # unpaired: any music's latents, not the stretch of this input
        real = pairs.target[run.sample_rows(pairs, rng, recipe.window)[0]].to(run.device)
    else:
        real = tgt
    feats = pairs.features[rows].to(run.device) if recipe.frame_features else None
    return Batch(rng, rows, src, tgt, rate, real, src if conditional else None, feats)


@dataclass
class RecordedBatch:
    """One step's windows of the training recordings (:meth:`RecordingLatents.sample`)."""

    real_rows: torch.Tensor  # [B, W] into the recordings' own-tempo frames
    fake_rows: torch.Tensor  # [B, W] into their time-scaled frames
    real: torch.Tensor  # own-tempo latents
    src: torch.Tensor  # time-scaled latents: the generator's input for the fakes
    rate: torch.Tensor
    feats: torch.Tensor | None


def recorded_batch(run: Run, recipe: GanRecipe, recs, step: int) -> RecordedBatch:
    """The recordings' windows for ``step``: a stream of its own, so the pairs' batches are those
    of the same recipe without recordings."""
    rec_rng = np.random.default_rng([recipe.seed, step, 1])
    real_rows, fake_rows, rec_rate = recs.sample(rec_rng, recipe.rec_batch * run.processes, recipe.window)
    real_rows, fake_rows, rec_rate = run.local(real_rows), run.local(fake_rows), run.local(rec_rate)
    return RecordedBatch(
        real_rows,
        fake_rows,
        recs.real[real_rows].to(run.device),
        recs.source[fake_rows].to(run.device),
        rec_rate.to(run.device),
        recs.features[fake_rows].to(run.device) if recipe.frame_features else None,
    )


WEIGHTS = {  # each generator term's log name -> the recipe setting that weights it
    "loss/latent_l1": "latent_weight",
    "loss/mel_db_l1": "spec_weight",
    "loss/adversarial": "adv_weight",
    "loss/feature_matching": "fm_weight",
    "loss/spec_adversarial": "spec_adv_weight",
    "loss/spec_feature_matching": "spec_fm_weight",
    "loss/rec_adversarial": "rec_adv_weight",
    "loss/rec_feature_matching": "rec_fm_weight",
}


@dataclass
class GanStep:
    """One training step: a batch, the generator's output, each discriminator's step, then the
    generator's (every term keyed by its log name, weighted by the recipe's weight of that name)."""

    run: Run
    recipe: GanRecipe
    stage: SequenceStage  # pairs, autoencoder
    generator: torch.nn.Module
    adversaries: dict[str, Adversary]
    recs: object  # the recorded latents, for the recordings discriminator
    conditional: bool
    mel: torch.nn.Module
    monitor: NaturalnessMonitor | None
    export: Callable

    def generate(self, b: Batch, step: int, adversarial: bool):
        """(fake latents of the batch, (real, fake, rate) of the recordings or None)."""
        if not (adversarial and "recordings_discriminator" in self.adversaries):
            return self.generator(b.src, b.rate, b.feats), None
        rb = recorded_batch(self.run, self.recipe, self.recs, step)
        # one generator call for both batches (one forward per backward under DDP)
        both = self.generator(
            torch.cat([b.src, rb.src]),
            torch.cat([b.rate, rb.rate]),
            torch.cat([b.feats, rb.feats]) if b.feats is not None else None,
        )
        fake, rec_fake = both[: b.src.shape[0]], both[b.src.shape[0] :]
        if self.recipe.rec_view == "latent":
            return fake, (rb.real, rec_fake, rb.rate)
        # what users get: a recording's own dB frames against the residual decoding of the stretch
        # of another (the decoded change applied to its time-scaled frames, decays included)
        real_db = self.recs.real_db[rb.real_rows].to(self.run.device).float()
        src_db = self.recs.source_db[rb.fake_rows].to(self.run.device).float()
        return fake, (real_db, residual_output(self.stage.autoencoder, rec_fake, rb.src, src_db), rb.rate)

    def views(self, b: Batch, fake: torch.Tensor, recorded) -> dict[str, tuple]:
        """What each discriminator reads: (real, fake, *context)."""
        out = {"discriminator": (b.real, fake, b.rate, b.cond)}
        if "spectrogram_discriminator" in self.adversaries:  # what users hear, for a few windows of the batch
            k, pairs = min(self.recipe.spec_d_batch, self.recipe.batch_size), self.stage.pairs
            src_db = pairs.source_db[b.rows[:k]].to(self.run.device).float()
            tgt_db = pairs.target_db[b.rows[:k]].to(self.run.device).float()
            out_db = residual_output(self.stage.autoencoder, fake[:k], b.src[:k], src_db)
            out["spectrogram_discriminator"] = (tgt_db, out_db, b.rate[:k], src_db)
        if recorded is not None:
            # the real windows are given the fakes' rates: the rate channel tells D nothing of which is which
            out["recordings_discriminator"] = recorded
        return out

    def __call__(self, step: int) -> dict:
        run, recipe = self.run, self.recipe
        b = sample_batch(run, recipe, self.stage.pairs, step, self.conditional)
        adversarial = step >= recipe.warmup_steps
        fake, recorded = self.generate(b, step, adversarial)
        active = self.adversaries if adversarial else {}
        views = self.views(b, fake, recorded) if active else {}
        scalars = {}
        for name, adversary in active.items():
            scalars.update(adversary.step(run, step, recipe.d_lr, *views[name]))
        terms = supervised_terms(
            recipe, self.stage.autoencoder, self.mel, self.stage.pairs, b.rows, fake, b.src, b.tgt, b.rng
        )
        for name, adversary in active.items():
            terms.update(adversary.terms(*views[name]))
        loss_g = sum(getattr(recipe, WEIGHTS[name]) * value for name, value in terms.items())
        run.check_finite(step, generator=loss_g)
        lr, scalars["grad_norm/generator"] = run.optimize("generator", loss_g, recipe.lr, step)
        run.update_ema(recipe.ema_decay)
        with torch.no_grad():  # collapse watch: spread of generated latents against real ones (1 = same spread)
            spread = fake.std(dim=(0, 1)).mean() / b.real.std(dim=(0, 1)).mean().clamp_min(1e-8)
        scalars.update({"loss/total": loss_g, **terms, "lr": lr, "g/latent_spread": spread})
        if self.monitor is not None and (step + 1) % recipe.naturalness_every == 0:
            self.monitor(run, self.export(), step + 1)
        return scalars


def train(recipe: GanRecipe) -> Run:
    check_recordings(recipe)  # before the run folder is made
    stage = sequence_stage(recipe)
    run, spec, ae, pairs = stage.run, stage.spectral, stage.autoencoder, stage.pairs
    generator = build_generator(recipe, ae.cfg.latent_dim)
    conditional = recipe.d_conditional and recipe.real == "target"
    stage.init_refiner(generator)
    state = State(
        {"generator": generator, "ema": copy.deepcopy(generator).requires_grad_(False)},
        {"generator": adam(generator, recipe.lr)},
        ema={"ema": "generator"},
    )
    # the unpaired discriminator's recordings, encoded by the frozen autoencoder (no random numbers drawn)
    recs = recorded_latents(recipe, run, spec, ae, pairs) if "recordings" in recipe.discriminators() else None
    add_discriminators(recipe, state, spec, ae.cfg.latent_dim, conditional)
    start = run.register(state)
    adv = adversaries(state)
    kind = "gan" if adv else "generator"  # a model file named for what trained it

    def export() -> Model:
        meta = {
            "stage": "gan",
            "transients": recipe.transients,
            "decays_in_training": recipe.decays,
            "attack_span_in_training": list(recipe.attack_span),
            "recipe": recipe_source(recipe),
        }
        refiner, blend = stage.exported(state.modules["ema"])
        return Model(kind, spec, ae, refiner, model_meta(kind, spec, ae, refiner, {**meta, **blend}))

    monitor = NaturalnessMonitor(recipe) if recipe.naturalness_every else None
    mel = losses.MelScale(spec.sample_rate, spec.n_fft).to(run.device)
    step = GanStep(run, recipe, stage, state.modules["generator"], adv, recs, conditional, mel, monitor, export)
    run.loop(start, step, export)
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
            frames=recipe.rec_view == "spectrogram",
            decays=recipe.decays,
        )
    run.print(
        f"{len(recs.items)} training excerpts of {len(recs.recordings)} recordings for the unpaired discriminator"
    )
    return recs
