"""Recorded music in a GAN run: the unpaired discriminator's data (training-split recordings,
:func:`gan_stretch.data.cache.recording_cache`) and held-out naturalness as training goes.

The naturalness monitor reads held-out recordings only to score the model (never for a gradient):
a fixed subset, one excerpt per recording, cut to ``naturalness_seconds``, stretched by the model
so far through the Stretcher users get, and told from the same excerpts at their own tempo by a
small fresh two-sample classifier (:func:`gan_stretch.measures.naturalness.two_sample_test`).
"""

from __future__ import annotations

import numpy as np
import torch

from gan_stretch.data.manifest import Corpus
from gan_stretch.errors import GanStretchError


def check_recordings(recipe) -> Corpus | None:
    """The recipe's recordings corpus, checked before a run starts (None without one): a recordings
    corpus (``gan-stretch data recordings``; or a true-tempo corpus, of which only the tempo-1 renders
    are read: unlabeled audio of one sound bank) with at least 2 training recordings for the
    discriminator (real and fake come from different ones) and, with the naturalness monitor, at
    least 2 held-out recordings (its folds are by recording)."""
    if not recipe.recordings:
        return None
    corpus = Corpus(recipe.recordings)
    if corpus.kind not in Corpus.UNLABELED_KINDS:
        raise GanStretchError(
            f"recordings={recipe.recordings} is a {corpus.kind} corpus; give one built by `gan-stretch data recordings` "
            "(or a true-tempo corpus, whose tempo-1 renders are then read alone)"
        )
    for split, needed, why in (
        ("train", recipe.rec_adv_weight + recipe.rec_fm_weight > 0, "the unpaired discriminator"),
        ("heldout", recipe.naturalness_every > 0, "the naturalness monitor (naturalness_every)"),
    ):
        n = len({corpus.recording(it) for it in corpus.split(split)})
        if needed and n < 2:
            raise GanStretchError(
                f"recordings={recipe.recordings} has {n} {split} recording(s); {why} needs at least 2"
            )
    return corpus


class NaturalnessMonitor:
    """``monitor(run, model, step)`` logs ``naturalness/rate_<r>`` and ``naturalness/mean``
    (held-out two-sample accuracy; 0.5: the stretched excerpts cannot be told from the originals).
    The held-out excerpts are read on the first call."""

    def __init__(self, recipe):
        self.recipe = recipe
        self.excerpts: list[tuple[str, np.ndarray, int]] | None = None
        self.real = None

    def _load(self) -> None:
        from gan_stretch.measures import naturalness as nat

        r = self.recipe
        corpus = Corpus(r.recordings)
        seen, chosen = set(), []
        for item in sorted(corpus.split("heldout"), key=lambda it: it.id):
            group = corpus.recording(item)
            if group not in seen:
                seen.add(group)
                chosen.append((group, item))
        chosen = chosen[: r.naturalness_excerpts]
        self.excerpts = []
        for group, item in chosen:
            sr = int(item.extra.get("sample_rate", corpus.sample_rate))
            x = corpus.load(item, 1.0, mono=False)[:, : int(r.naturalness_seconds * sr)]
            self.excerpts.append((group, x, sr))
        self.real = [nat.Clip(g, *nat.patches(x, sr)) for g, x, sr in self.excerpts]

    def __call__(self, run, model, step: int) -> dict:
        if not run.is_main:
            return {}
        with torch.random.fork_rng():  # the classifier's seeding leaves the run's random streams as they were
            return self._score(run, model, step)

    def _score(self, run, model, step: int) -> dict:
        from gan_stretch.measures import naturalness as nat
        from gan_stretch.stretching.stretcher import Stretcher

        if self.excerpts is None:
            self._load()
        stretcher = Stretcher(model, device=str(run.device))
        folds = min(4, len(self.excerpts))
        values = {}
        for rate in self.recipe.naturalness_rates:
            with torch.no_grad():
                out = [stretcher.stretch(x, sr, rate) for _, x, sr in self.excerpts]
            fake = [nat.Clip(g, *nat.patches(y, sr)) for (g, _, sr), y in zip(self.excerpts, out)]
            test = nat.two_sample_test(self.real, fake, folds=folds, seed=0, steps=self.recipe.naturalness_steps)
            values[f"naturalness/rate_{rate:g}"] = test["accuracy"]
        values["naturalness/mean"] = float(np.mean(list(values.values())))
        run.log(values, step)
        run.print(f"step {step}: held-out naturalness {values['naturalness/mean']:.3f} (0.5: indistinguishable)")
        return values
