"""What the stage-2 runs (mapper, GAN) share: their start (the frozen autoencoder, the cached
latent pairs, fine-tuning from a model file) and their supervised loss terms."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from gan_stretch.data.manifest import Corpus
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import ConfigError, GanStretchError
from gan_stretch.io import checkpoint
from gan_stretch.models import FrameAutoencoder
from gan_stretch.models.model_file import Model
from gan_stretch.train.common import Run, corpora
from gan_stretch.train.recipes import Recipe
from gan_stretch.train.stages import STAGES


@dataclass
class SequenceStage:
    """What a stage-2 run (mapper, GAN) starts from: see :func:`sequence_stage`."""

    run: Run
    recipe: Recipe
    spectral: SpectralConfig
    autoencoder: FrameAutoencoder  # frozen, on the run's device
    pairs: LatentPairs  # noqa: F821  (gan_stretch.data.cache, imported where used)
    init: Model | None  # the model whose refiner starts the run (fine-tuning), or None

    def init_refiner(self, refiner: torch.nn.Module) -> None:
        """Starts ``refiner`` from the refiner of ``init``, the model file ``recipe.init`` that
        :func:`sequence_stage` loaded and checked (fine-tuning), unless the run resumes from its
        own checkpoint."""
        if self.init is None or self.run.last.exists():
            return
        state = self.init.refiner.state_dict()
        # A generator that takes per-frame features may start from one that does not: the new input
        # layer starts at zero, so the run starts from exactly the init's outputs.
        new = refiner.state_dict().items()
        added = {k: torch.zeros_like(v) for k, v in new if k.startswith("frame_inp.") and k not in state}
        state.update(added)
        try:
            refiner.load_state_dict(state)
        except RuntimeError as e:
            raise ConfigError(
                f"init={self.recipe.init} has other sizes than this recipe ({checkpoint.mismatch(e)})"
            ) from None
        extra = " (its per-frame feature input added at zero)" if added else ""
        self.run.print(f"starting from the {self.init.kind} of {self.recipe.init}{extra}")

    def exported(self, refiner: torch.nn.Module) -> tuple[torch.nn.Module, dict]:
        """The refiner a model file gets, and what its metadata records of the blend: ``refiner``
        itself, or with ``recipe.init_blend`` a copy whose every weight is that much the init's
        (a weight the init lacks, the per-frame feature input, counts as zero there)."""
        blend = self.recipe.init_blend
        if not blend:  # a blend needs init (checked with the recipe), which sequence_stage loads
            return refiner, {}
        blended = copy.deepcopy(refiner)
        init = self.init.refiner.state_dict()
        with torch.no_grad():
            for k, v in blended.state_dict().items():
                if v.is_floating_point():
                    v.lerp_(init[k].to(v) if k in init else torch.zeros_like(v), blend)
        return blended, {"init": self.recipe.init, "init_blend": blend}


def sequence_stage(recipe) -> SequenceStage:
    """Start of a stage-2 run: the run, the frozen autoencoder of ``recipe.autoencoder`` (any model
    file works; only its autoencoder is used), the cached latent pairs of ``recipe.data``, and the
    model ``recipe.init`` whose refiner starts the run (None without one)."""
    from gan_stretch.data.cache import concat_pairs, file_digest, latent_cache
    from gan_stretch.models.model_file import load_model

    loaded = load_model(recipe.autoencoder)  # a missing input fails before the run folder is made
    init = load_model(recipe.init) if recipe.init else None
    if init is not None:
        kinds = STAGES[recipe.stage].kinds
        if init.kind not in kinds:
            raise ConfigError(
                f"init={recipe.init} is a {init.kind} model; a {recipe.stage} run needs a {' or '.join(kinds)} model"
            )
        same = all(
            torch.allclose(a.float(), b.float(), atol=2e-3, rtol=2e-3)
            for a, b in zip(init.autoencoder.state_dict().values(), loaded.autoencoder.state_dict().values())
        )
        if init.autoencoder.cfg != loaded.autoencoder.cfg or not same:
            raise ConfigError(
                f"init={recipe.init} was trained on another autoencoder than "
                f"autoencoder={recipe.autoencoder}; its refiner would not fit these latents"
            )
    sets = [c for c in corpora(recipe) if recipe.pairs in ("all", c.kind)]
    if not sets:
        raise GanStretchError(f"no corpus in data={recipe.data} has {recipe.pairs} pairs")
    longest = max(longest_pair(c, loaded.spectral) for c in sets)
    if recipe.window > longest:
        raise ConfigError(
            f"window={recipe.window} latent frames is longer than any training pair in "
            f"data={recipe.data} (at most {longest} frames); lower window"
        )
    run = Run(recipe)
    base = Model(
        "autoencoder",
        loaded.spectral,
        loaded.autoencoder,
        None,
        {**loaded.meta, "kind": "autoencoder", "refiner": None},
    )
    digest = file_digest(recipe.autoencoder)
    with run.accelerator.main_process_first():  # the main process builds missing caches, the others read them
        pairs = concat_pairs(
            [
                latent_cache(
                    c,
                    base,
                    digest,
                    transients=recipe.transients,
                    frames=needs_frames(recipe),
                    decays=recipe.decays,
                    span=tuple(recipe.attack_span),
                    features=bool(getattr(recipe, "frame_features", False)),
                )
                for c in sets
            ]
        )
    run.print(f"{len(pairs.lengths)} latent pairs, {pairs.source.shape[0]} frames")
    return SequenceStage(run, recipe, base.spectral, base.autoencoder.to(run.device), pairs, init)


def longest_pair(corpus: Corpus, cfg: SpectralConfig) -> int:
    """Frames of a corpus's longest training pair (its excerpt at its slowest rate), from the manifest."""
    seconds = float(corpus.manifest.get("seconds") or 0)
    rates = [float(r) for r in corpus.manifest.get("rates") or [1.0]]
    return cfg.n_frames(int(seconds * corpus.sample_rate / min(rates + [1.0]))) if seconds > 0 else 10**9


def supervised_terms(
    recipe,
    ae: FrameAutoencoder,
    mel,
    pairs,
    rows: torch.Tensor,
    pred: torch.Tensor,
    src: torch.Tensor,
    tgt: torch.Tensor,
    rng: np.random.Generator,
) -> dict[str, torch.Tensor]:
    """The supervised terms the mapper and the generator share, keyed by their log names.

    loss/latent_l1: L1 between refined and true latents. loss/mel_db_l1: L1 on mel dB of a random
    subset of the batch's frames: decoded refined latents against decoded true latents, or with
    ``recipe.residual_loss`` the spectrum users get (the decoded change applied to the
    time-scaled input's frames, as residual decoding does) against the true frames.
    pred, src, tgt: [B, W, L]; rows: [B, W] rows of ``pairs``.
    """
    from gan_stretch.train import losses

    terms = {"loss/latent_l1": (pred - tgt).abs().mean()}
    pick = spec_rows(rng, recipe)
    if recipe.residual_loss:
        flat = lambda x: x.reshape(-1, x.shape[-1])[pick.to(x.device)]
        src_db = pairs.source_db[rows.reshape(-1)[pick]].to(pred.device).float()
        tgt_db = pairs.target_db[rows.reshape(-1)[pick]].to(pred.device).float()
        out = residual_output(ae, flat(pred), flat(src), src_db)
        terms["loss/mel_db_l1"] = losses.mel_l1(mel, out, tgt_db)
    else:
        terms["loss/mel_db_l1"] = losses.decoded_mel_l1(mel, ae.decode, pred, tgt, pick)
    return terms


def residual_output(ae: FrameAutoencoder, pred: torch.Tensor, src: torch.Tensor, src_db: torch.Tensor) -> torch.Tensor:
    """What residual decoding makes of refined latents: the decoded change (pred against the
    time-scaled input's latents ``src``) applied to the time-scaled input's dB frames [..., F]."""
    return (src_db + ae.decode(pred) - ae.decode(src)).clamp(-ae.cfg.db_range, 0)


def needs_frames(recipe) -> bool:
    """Whether a stage-2 recipe trains on the dB frames as well as the latents."""
    return bool(recipe.residual_loss or getattr(recipe, "spec_adv_weight", 0) + getattr(recipe, "spec_fm_weight", 0))


def spec_rows(rng: np.random.Generator, recipe) -> torch.Tensor:
    """Which of a batch's frames the decoded-spectrum loss looks at this step (``spec_frames`` of
    this process's ``batch_size`` x ``window`` frames)."""
    n = recipe.batch_size * recipe.window
    return torch.from_numpy(rng.choice(n, min(recipe.spec_frames, n), replace=False))
