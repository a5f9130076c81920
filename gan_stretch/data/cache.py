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

from gan_stretch.data.manifest import Corpus
from gan_stretch.dsp import onset_detection, spectrum, timemap
from gan_stretch.dsp.band import Band
from gan_stretch.dsp.decays import band_centres
from gan_stretch.dsp.decays import to_bins as bands_to_bins
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.io.checkpoint import atomic_write
from gan_stretch.stretching.plan import make_plan
from gan_stretch.stretching.sources import InMemory
from gan_stretch.stretching.streaming import analysis_pass


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
    spec = spectrum.stft(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), cfg)
    mag = spec.abs()
    return rearrange(spectrum.magnitude_to_db(mag, spectrum.reference_db(mag), cfg), "f t -> t f"), spec


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
    span: tuple[int, int] = onset_detection.TRANSIENT_FRAMES,
    features: bool = False,
) -> LatentPairs:
    """Encodes each (input, target) pair of the split once with the frozen autoencoder of ``model``.

    The input's latents are time-scaled to the target's frames as the Stretcher does: uniformly,
    or with ``transients`` each detected attack at speed 1 (gan_stretch.dsp.timemap.with_transients).
    ``frames`` also keeps both sides' dB frames (float16; about 2 kB per frame). With ``decays``
    (and ``transients``) the Stretcher's real-time decays are in the loop: the time-scaled input's
    frames get their level change (the plan's, :func:`gan_stretch.stretching.plan.make_plan`), and the target's latents encode the truth
    without it, so what a refiner learns is what remains after the decays. ``span``: the frames
    before and after each onset of those attack regions. ``features`` also keeps each source
    frame's plan (:func:`gan_stretch.dsp.timemap.frame_features`: local rate, attack mask).
    """
    if decays and not transients:
        raise ValueError("decays in training need transients (the attack regions they start from)")
    items = corpus.split(split)
    span = tuple(int(v) for v in span)
    name = _latent_name(model_digest, [(i.id, i.audio) for i in items], transients, decays, span)
    suffix = f"{'-frames' if frames else ''}{'-plan' if features else ''}"
    path = corpus.root / "cache" / f"latents-{name}{suffix}.safetensors"
    if path.is_file():
        return _read_latent_pairs(path)
    pairs = _encode_pairs(corpus, items, model, transients, decays, span, frames, features)
    with atomic_write(path) as tmp:
        save_file(_tensors(pairs), str(tmp), metadata={"kinds": json.dumps(pairs.kinds)})
    return pairs


def _latent_name(model_digest: str, key: list, transients: bool, decays: bool, span: tuple[int, int]) -> str:
    """The name of a latent cache: what produced it (the model, the corpus's renders, the plan)."""
    name = (
        _digest(2, model_digest, key)
        if not transients
        else _digest(5, model_digest, key, "transients", "analysis pass", onset_detection.ONSET_DELTA)
        if not decays
        else _digest(5, model_digest, key, "transients", "analysis pass", onset_detection.ONSET_DELTA, "decays", "r2")
    )
    if transients and span != tuple(onset_detection.TRANSIENT_FRAMES):  # the packaged models' regions keep their name
        name = _digest(name, "span", span)
    return name


def _tensors_and_meta(path, key: str) -> tuple[dict, object]:
    """A cache file's tensors and the JSON value of its metadata ``key``."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[key])
    return load_file(str(path)), meta


def _read_latent_pairs(path) -> LatentPairs:
    t, kinds = _tensors_and_meta(path, "kinds")
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


def _encode_pairs(
    corpus: Corpus, items, model, transients: bool, decays: bool, span, frames: bool, features: bool
) -> LatentPairs:
    """Every (input, target) pair of ``items`` through the autoencoder: see :func:`latent_cache`."""
    cfg, ae = model.spectral, model.autoencoder
    src, tgt, src_db, tgt_db, feats, lengths, rates = [], [], [], [], [], [], []
    for item in tqdm(items, desc=f"encoding latents of {corpus.root.name}", unit="item"):
        wave = corpus.load(item, 1.0)
        db, _ = db_frames(wave, cfg)
        lat = ae.encode(db)
        onsets, mel_db = analysis(wave, cfg) if transients else (None, None)
        for rate in corpus.rates(item):
            truth = corpus.load(item, rate)
            truth_db = db_frames(truth, cfg)[0]
            tmap = timemap.TimeMap(np.array([0.0, len(wave)]), np.array([0.0, len(truth)]))
            positions, attacks, shift = _pair_plan(
                cfg, tmap, lat.shape[0], truth_db.shape[0], rate, transients, onsets, mel_db, span, decays
            )
            scaled_db = timemap.time_scale(db, positions)
            if shift is not None:  # the decays' level change: on the input's frames, taken out of the truth's
                scaled_db = (scaled_db + shift).clamp(-cfg.db_range, 0)
                target = ae.encode((truth_db - shift[: truth_db.shape[0]]).clamp(-cfg.db_range, 0))
            else:
                target = ae.encode(truth_db)
            src.append(timemap.time_scale(lat, positions))
            tgt.append(target)
            if frames:
                src_db.append(scaled_db.half())
                tgt_db.append(truth_db.half())
            if features:
                feats.append(timemap.frame_features(positions, attacks)[: target.shape[0]])
            lengths.append(target.shape[0])
            rates.append(rate)
    lengths = np.asarray(lengths, np.int64)
    return LatentPairs(
        torch.cat(src),
        torch.cat(tgt),
        _offsets(lengths),
        lengths,
        np.asarray(rates, np.float64),
        [corpus.kind] * len(lengths),
        torch.cat(src_db) if frames else None,
        torch.cat(tgt_db) if frames else None,
        torch.cat(feats) if features else None,
    )


def _pair_plan(
    cfg: SpectralConfig,
    tmap: timemap.TimeMap,
    n_in: int,
    n_out: int,
    rate: float,
    transients: bool,
    onsets=None,
    mel_db=None,
    span: tuple[int, int] = onset_detection.TRANSIENT_FRAMES,
    decays: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """How the Stretcher reads ``n_in`` input frames to make ``n_out`` at ``rate`` (the time map
    ``tmap``): uniformly, or with ``transients`` each attack in ``onsets`` at speed 1 (the plan of
    :func:`gan_stretch.stretching.plan.make_plan`, with the decays' level change where ``decays``).
    -> (positions, attack mask or None, the level change per bin of the model [n_out, F] dB or None)."""
    if not transients:
        return timemap.stretch_positions(n_in, n_out, rate), None, None
    plan = make_plan(tmap, cfg, n_in, onsets, mel_db, span=span, decay=decays)
    return plan.positions, plan.attacks, None if plan.change is None else to_bins(plan.change, cfg)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """Where each of the concatenated segments of ``lengths`` starts."""
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def analysis(wave: np.ndarray, cfg: SpectralConfig) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, band levels in dB) of a mono input at the model's rate: the Stretcher's analysis
    pass (:func:`gan_stretch.stretching.streaming.analysis_pass`), so a cached plan is the Stretcher's."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    n = cfg.n_frames(x.shape[-1])
    found = analysis_pass(InMemory(x), cfg, cfg, Band(cfg, cfg, "cpu"), n, 1024, True)
    return found.onsets, found.levels_db


def to_bins(change: np.ndarray, cfg: SpectralConfig) -> torch.Tensor:
    """A plan's decay change per band [T', M] -> per bin of the model [T', F] (dB)."""
    return torch.from_numpy(bands_to_bins(change, cfg, band_centres(cfg, cfg.sample_rate))).float()


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


@dataclass
class RecordingLatents:
    """Training-split recordings through a frozen autoencoder, for the unpaired discriminator.

    real: each excerpt's latents at its own tempo (music as played: what the discriminator learns
    is real). source: per excerpt and rate, its latents time-scaled as the Stretcher reads them
    (the generator's input for a fake). Segment i of each is rows offsets[i]:offsets[i] + lengths[i];
    ``groups`` name each segment's recording (the split and the real/fake draw are by recording)."""

    real: torch.Tensor  # [M, L]
    real_offsets: np.ndarray
    real_lengths: np.ndarray
    real_groups: np.ndarray  # [segments] index into ``recordings``
    source: torch.Tensor  # [M', L]
    offsets: np.ndarray
    lengths: np.ndarray
    rates: np.ndarray
    groups: np.ndarray
    recordings: list[str]
    items: list[str]  # the excerpts read (all of the training split)
    features: torch.Tensor | None = None  # [M', K] each source frame's plan (timemap.frame_features)
    # with frames: the dB frames of ``real`` [M, F] and of ``source`` [M', F] (float16), the latter
    # time-scaled as the Stretcher reads the input, the decays' level change applied where asked
    real_db: torch.Tensor | None = None
    source_db: torch.Tensor | None = None

    def sample(
        self, rng: np.random.Generator, batch: int, window: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step's draw: (real rows [B, W] into ``real``, fake rows [B, W] into ``source``, rate
        [B]). The recordings are dealt at random into two halves; the real windows come from one
        half and the fakes from the other, so the generator never stretches a recording the
        discriminator sees as real in the same step. Each fake's rate is drawn uniformly from the
        cached rates (not by length, which would favour the slow rates' longer sequences)."""
        n = len(self.recordings)
        real_side = np.zeros(n, bool)
        real_side[rng.permutation(n)[: n // 2]] = True
        real, _ = _windows(rng, self.real_offsets, self.real_lengths, real_side[self.real_groups], batch, window)
        choices = np.unique(self.rates)
        rate = choices[rng.integers(0, len(choices), batch)]
        fake = torch.zeros(batch, window, dtype=torch.int64)
        for r in choices:
            at = np.flatnonzero(rate == r)
            if len(at):
                ok = ~real_side[self.groups] & (self.rates == r)
                fake[at] = _windows(rng, self.offsets, self.lengths, ok, len(at), window)[0]
        return real, fake, torch.from_numpy(rate.astype(np.float32))


def _windows(rng, offsets, lengths, allowed, batch: int, window: int):
    """Random windows of ``window`` frames in the allowed segments (weighted by how many they hold):
    (rows [B, W], the segment of each)."""
    ok = np.flatnonzero(allowed & (lengths >= window))
    if len(ok) == 0:
        raise ValueError(f"no training recording is {window} frames long; lower window=")
    weights = (lengths[ok] - window + 1).astype(np.float64)
    seg = ok[rng.choice(len(ok), size=batch, p=weights / weights.sum())]
    starts = offsets[seg] + (rng.random(batch) * (lengths[seg] - window + 1)).astype(np.int64)
    return torch.from_numpy(starts[:, None] + np.arange(window)[None]), seg


def to_sample_rate(wave: np.ndarray, sr: int, target: int) -> np.ndarray:
    """mono [N] at ``sr`` -> at ``target`` (soxr; the autoencoder's frames are of its own rate)."""
    if sr == target:
        return wave
    import soxr

    return soxr.resample(wave, sr, target).astype(np.float32)


@torch.no_grad()
def recording_cache(
    corpus: Corpus,
    model,
    model_digest: str,
    rates,
    transients: bool = False,
    span: tuple[int, int] = onset_detection.TRANSIENT_FRAMES,
    features: bool = False,
    frames: bool = False,
    decays: bool = False,
) -> RecordingLatents:
    """Encodes each training-split excerpt of a recordings corpus (or tempo-1 render of a true-tempo
    corpus, :meth:`Corpus.recording` grouping them by piece) once with the frozen autoencoder
    of ``model`` (mono, resampled to the model's rate): its own-tempo latents and, at each of
    ``rates``, its latents time-scaled as the Stretcher does (uniformly, or with ``transients``
    each attack at speed 1, as in :func:`latent_cache`). With ``frames`` it keeps their dB frames
    too (for a discriminator on spectrograms), the time-scaled ones with the decays' level change
    where ``decays`` (what the Stretcher's residual decoding starts from). Only the training split
    is ever read: the held-out excerpts are the recordings the model is scored on."""
    items = corpus.split("train")
    names = sorted({corpus.recording(it) for it in items})
    if corpus.kind not in corpus.UNLABELED_KINDS or len(names) < 2:  # the trainer checks this first (train.recordings)
        raise ValueError(
            f"{corpus.root}: a recordings (or true-tempo) corpus with at least 2 training recordings is needed"
        )
    rates = sorted({float(r) for r in rates})
    span = tuple(int(v) for v in span)
    key = [(i.id, i.audio) for i in items]
    decays = decays and transients and frames  # the decays start from the attack regions; only frames show them
    parts = ["recordings", 2, model_digest, key, rates, transients, "analysis pass", onset_detection.ONSET_DELTA, span]
    name = _digest(*parts, *((["frames", decays]) if frames else []))
    path = corpus.root / "cache" / f"recordings-{name}{'-plan' if features else ''}.safetensors"
    if path.is_file():
        return _read_recordings(path)
    out = _encode_recordings(corpus, items, names, model, rates, transients, span, features, frames, decays)
    with atomic_write(path) as tmp:
        save_file(
            _recording_tensors(out), str(tmp), metadata={"meta": json.dumps({"recordings": names, "items": out.items})}
        )
    return out


def _read_recordings(path) -> RecordingLatents:
    t, meta = _tensors_and_meta(path, "meta")
    return RecordingLatents(
        t["real"],
        t["real_offsets"].numpy(),
        t["real_lengths"].numpy(),
        t["real_groups"].numpy(),
        t["source"],
        t["offsets"].numpy(),
        t["lengths"].numpy(),
        t["rates"].numpy(),
        t["groups"].numpy(),
        meta["recordings"],
        meta["items"],
        t.get("features"),
        t.get("real_db"),
        t.get("source_db"),
    )


def _encode_recordings(
    corpus: Corpus,
    items,
    names: list[str],
    model,
    rates: list[float],
    transients: bool,
    span,
    features: bool,
    frames: bool = False,
    decays: bool = False,
) -> RecordingLatents:
    """Every excerpt of ``items`` through the autoencoder: see :func:`recording_cache`."""
    cfg, ae = model.spectral, model.autoencoder
    real, real_groups, src, feats, lengths, seg_rates, groups = [], [], [], [], [], [], []
    real_db, src_db = [], []
    device = next(ae.parameters()).device
    for item in tqdm(items, desc=f"encoding recordings of {corpus.root.name}", unit="item"):
        sr = int(item.extra.get("sample_rate", corpus.sample_rate))
        wave = to_sample_rate(corpus.load(item, 1.0), sr, cfg.sample_rate)
        db = db_frames(wave, cfg)[0]
        lat = ae.encode(db.to(device)).cpu()
        group = names.index(corpus.recording(item))
        real.append(lat)
        real_groups.append(group)
        if frames:
            real_db.append(db.half())
        onsets, mel_db = analysis(wave, cfg) if transients else (None, None)
        for rate in rates:
            n_out = max(1, round(len(wave) / rate))
            tmap = timemap.TimeMap(np.array([0.0, len(wave)]), np.array([0.0, n_out]))
            positions, attacks, shift = _pair_plan(
                cfg, tmap, lat.shape[0], cfg.n_frames(n_out), rate, transients, onsets,
                mel_db if decays else None, span, decays,
            )  # fmt: skip
            src.append(timemap.time_scale(lat, positions))
            if frames:
                scaled = timemap.time_scale(db, positions)
                src_db.append((scaled if shift is None else (scaled + shift).clamp(-cfg.db_range, 0)).half())
            if features:
                feats.append(timemap.frame_features(positions, attacks))
            lengths.append(len(positions))
            seg_rates.append(rate)
            groups.append(group)
    real_lengths = np.asarray([x.shape[0] for x in real], np.int64)
    lengths = np.asarray(lengths, np.int64)
    return RecordingLatents(
        torch.cat(real),
        _offsets(real_lengths),
        real_lengths,
        np.asarray(real_groups, np.int64),
        torch.cat(src),
        _offsets(lengths),
        lengths,
        np.asarray(seg_rates, np.float64),
        np.asarray(groups, np.int64),
        names,
        [it.id for it in items],
        torch.cat(feats) if features else None,
        torch.cat(real_db) if frames else None,
        torch.cat(src_db) if frames else None,
    )


def _recording_tensors(out: RecordingLatents) -> dict[str, torch.Tensor]:
    tensors = {
        "real": out.real.contiguous(),
        "real_offsets": torch.from_numpy(out.real_offsets),
        "real_lengths": torch.from_numpy(out.real_lengths),
        "real_groups": torch.from_numpy(out.real_groups),
        "source": out.source.contiguous(),
        "offsets": torch.from_numpy(out.offsets),
        "lengths": torch.from_numpy(out.lengths),
        "rates": torch.from_numpy(out.rates),
        "groups": torch.from_numpy(out.groups),
    }
    for name in ("features", "real_db", "source_db"):
        if getattr(out, name) is not None:
            tensors[name] = getattr(out, name).contiguous()
    return tensors
