"""Caches that keep training off the audio path.

frames   dB magnitude frames of every training render, for the autoencoder   [N, F] float16
latents  per training pair: the input's latents time-scaled to the target's length, and the
         target's latents                                                      [M, L] float32 each
Both live in ``<corpus>/cache/`` under a name derived from what produced them, so a changed
corpus, STFT setting or autoencoder never reads a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .. import spectral, timemap
from ..checkpoint import atomic_write
from ..spectral import SpectralConfig
from .manifest import Corpus


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def db_frames(wave: np.ndarray, cfg: SpectralConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """mono [N] -> (dB frames [T, F] relative to the render's maximum, complex STFT [F, T])."""
    spec = spectral.analyze(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), cfg)
    mag = spec.abs()
    return rearrange(spectral.magnitude_to_db(mag, spectral.reference_db(mag), cfg), "f t -> t f"), spec


def frame_cache(corpus: Corpus, cfg: SpectralConfig, quiet_db: float, split: str = "train") -> np.ndarray:
    """dB frames [N, F] of every render of the split's items, frames quieter than ``quiet_db`` dropped."""
    items = corpus.split(split)
    path = corpus.root / "cache" / f"frames-{_digest(cfg.to_dict(), quiet_db, [(i.id, i.audio) for i in items])}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    chunks = []
    for item in tqdm(items, desc=f"caching frames of {corpus.root.name}", unit="item"):
        for key in item.audio:
            frames, _ = db_frames(corpus.load(item, float(key)), cfg)
            chunks.append(frames[frames.amax(dim=-1) > quiet_db].numpy().astype(np.float16))
    frames = np.concatenate(chunks) if chunks else np.zeros((0, cfg.n_freq), np.float16)
    with atomic_write(path) as tmp:
        np.save(tmp, frames)
    return np.load(path, mmap_mode="r")


@dataclass
class LatentPairs:
    """Aligned latent sequences, concatenated: segment i is rows offsets[i]:offsets[i] + lengths[i].

    With ``frames``, the dB frames behind them too, so losses and discriminators can see the
    spectrum users get (residual decoding: the decoded change applied to the time-scaled input)."""

    source: torch.Tensor  # [M, L] input latents time-scaled to the target's frames
    target: torch.Tensor  # [M, L] latents of the truly stretched audio
    offsets: np.ndarray
    lengths: np.ndarray
    rates: np.ndarray
    kinds: list[str]
    source_db: torch.Tensor | None = None  # [M, F] float16: the input's dB frames time-scaled the same way
    target_db: torch.Tensor | None = None  # [M, F] float16: the truly stretched audio's dB frames
    features: torch.Tensor | None = None  # [M, K] float32: each source frame's plan (timemap.frame_features)

    def sample_rows(self, rng: np.random.Generator, batch: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random aligned windows: (rows [B, W] into the concatenated frames, rate [B])."""
        ok = np.flatnonzero(self.lengths >= window)
        if len(ok) == 0:
            raise ValueError(f"no training pair is {window} frames long; lower window=")
        weights = (self.lengths[ok] - window + 1).astype(np.float64)
        seg = ok[rng.choice(len(ok), size=batch, p=weights / weights.sum())]
        starts = self.offsets[seg] + (rng.random(batch) * (self.lengths[seg] - window + 1)).astype(np.int64)
        return torch.from_numpy(starts[:, None] + np.arange(window)[None]), torch.from_numpy(
            self.rates[seg].astype(np.float32)
        )

    def sample(self, rng: np.random.Generator, batch: int, window: int):
        """Random aligned windows -> (source [B, W, L], target [B, W, L], rate [B])."""
        rows, rate = self.sample_rows(rng, batch, window)
        return self.source[rows], self.target[rows], rate


def _tensors(pairs: LatentPairs) -> dict[str, torch.Tensor]:
    out = {
        "source": pairs.source.contiguous(),
        "target": pairs.target.contiguous(),
        "offsets": torch.from_numpy(pairs.offsets),
        "lengths": torch.from_numpy(pairs.lengths),
        "rates": torch.from_numpy(pairs.rates),
    }
    if pairs.source_db is not None:
        out.update(source_db=pairs.source_db.contiguous(), target_db=pairs.target_db.contiguous())
    if pairs.features is not None:
        out["features"] = pairs.features.contiguous()
    return out


@torch.no_grad()
def latent_cache(
    corpus: Corpus,
    model,
    model_digest: str,
    split: str = "train",
    transients: bool = False,
    frames: bool = False,
    decays: bool = False,
    span: tuple[int, int] = spectral.TRANSIENT_FRAMES,
    features: bool = False,
) -> LatentPairs:
    """Encodes each (input, target) pair of the split once with the frozen autoencoder of ``model``.

    The input's latents are time-scaled to the target's frames as the Stretcher does: uniformly,
    or with ``transients`` each detected attack at speed 1 (gan_stretch.timemap.with_transients).
    ``frames`` also keeps both sides' dB frames (float16; about 2 kB per frame). With ``decays``
    (and ``transients``) the Stretcher's real-time decays are in the loop: the time-scaled input's
    frames get their level change (:func:`decay_shift`), and the target's latents encode the truth
    without it, so what a refiner learns is what remains after the decays. ``span``: the frames
    before and after each onset of those attack regions. ``features`` also keeps each source
    frame's plan (:func:`gan_stretch.timemap.frame_features`: local rate, attack mask).
    """
    if decays and not transients:
        raise ValueError("decays in training need transients (the attack regions they start from)")
    items = corpus.split(split)
    cfg, ae = model.spectral, model.autoencoder
    key = [(i.id, i.audio) for i in items]
    name = (
        _digest(2, model_digest, key)
        if not transients
        else _digest(3, model_digest, key, "transients", "refined onsets", spectral.ONSET_DELTA)
        if not decays
        else _digest(4, model_digest, key, "transients", "refined onsets", spectral.ONSET_DELTA, "decays")
    )
    span = tuple(int(v) for v in span)
    if transients and span != tuple(spectral.TRANSIENT_FRAMES):  # the packaged models' regions keep their name
        name = _digest(name, "span", span)
    suffix = f"{'-frames' if frames else ''}{'-plan' if features else ''}"
    path = corpus.root / "cache" / f"latents-{name}{suffix}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            kinds = json.loads(f.metadata()["kinds"])
        return LatentPairs(
            t["source"],
            t["target"],
            t["offsets"].numpy(),
            t["lengths"].numpy(),
            t["rates"].numpy(),
            kinds,
            t.get("source_db"),
            t.get("target_db"),
            t.get("features"),
        )
    src, tgt, src_db, tgt_db, feats, lengths, rates = [], [], [], [], [], [], []
    for item in tqdm(items, desc=f"encoding latents of {corpus.root.name}", unit="item"):
        wave = corpus.load(item, 1.0)
        db, _ = db_frames(wave, cfg)
        lat = ae.encode(db)
        onsets = (
            spectral.onsets_of(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), cfg)
            if transients
            else None
        )
        for rate in corpus.rates(item):
            truth = corpus.load(item, rate)
            truth_db = db_frames(truth, cfg)[0]
            shift = None
            if transients:
                tmap = timemap.TimeMap(np.array([0.0, len(wave)]), np.array([0.0, len(truth)]))
                plan = timemap.frame_positions(tmap, cfg, lat.shape[0], onsets, span=span)
                positions, attacks = plan.positions, plan.attacks
                if decays and attacks is not None:
                    shift = decay_shift(db, positions, attacks, cfg, span[0])
            else:
                positions = spectral.stretch_positions(lat.shape[0], truth_db.shape[0], rate)
                attacks = None
            scaled_db = spectral.time_scale(db, positions)
            if shift is not None:
                scaled_db = (scaled_db + shift).clamp(-cfg.db_range, 0)
                truth_db_free = (truth_db - shift[: truth_db.shape[0]]).clamp(-cfg.db_range, 0)
                target = ae.encode(truth_db_free)
            else:
                target = ae.encode(truth_db)
            src.append(spectral.time_scale(lat, positions))
            tgt.append(target)
            if frames:
                src_db.append(scaled_db.half())
                tgt_db.append(truth_db.half())
            if features:
                feats.append(timemap.frame_features(positions, attacks)[: target.shape[0]])
            lengths.append(target.shape[0])
            rates.append(rate)
    lengths = np.asarray(lengths, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    pairs = LatentPairs(
        torch.cat(src),
        torch.cat(tgt),
        offsets,
        lengths,
        np.asarray(rates, np.float64),
        [corpus.kind] * len(lengths),
        torch.cat(src_db) if frames else None,
        torch.cat(tgt_db) if frames else None,
        torch.cat(feats) if features else None,
    )
    with atomic_write(path) as tmp:
        save_file(_tensors(pairs), str(tmp), metadata={"kinds": json.dumps(pairs.kinds)})
    return pairs


def decay_shift(
    db: torch.Tensor,
    positions: torch.Tensor,
    attacks: torch.Tensor,
    cfg: SpectralConfig,
    before: int = spectral.TRANSIENT_FRAMES[0],
) -> torch.Tensor:
    """The Stretcher's real-time decay change (gan_stretch.decays) for an input's dB frames
    [T, F] read at ``positions`` [T'] with attack regions ``attacks`` [T']: dB per output frame
    and bin [T', F]. The bands' levels come from the dB frames as the Stretcher's analysis pass
    takes them from the magnitudes (mel power, floored 100 dB below its maximum)."""
    from .. import decays

    power = torch.pow(10.0, db.double() / 10) @ spectral.mel_filters(cfg, db.device).double()  # [T, MEL_BANDS]
    change = decays.corrections(decays.levels_db(power.numpy()), positions, attacks, before)
    return torch.from_numpy(decays.to_bins(change, cfg, decays.band_centres(cfg, cfg.sample_rate))).float()


def concat_pairs(parts: list[LatentPairs]) -> LatentPairs:
    shift = np.cumsum([0] + [p.source.shape[0] for p in parts[:-1]])
    frames = all(p.source_db is not None for p in parts)
    features = all(p.features is not None for p in parts)
    return LatentPairs(
        torch.cat([p.source for p in parts]),
        torch.cat([p.target for p in parts]),
        np.concatenate([p.offsets + s for p, s in zip(parts, shift)]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.rates for p in parts]),
        sum((p.kinds for p in parts), []),
        torch.cat([p.source_db for p in parts]) if frames else None,
        torch.cat([p.target_db for p in parts]) if frames else None,
        torch.cat([p.features for p in parts]) if features else None,
    )
