"""Measures that need no truth, for recorded music (which has no true-tempo twin).

naturalness (:func:`two_sample_test`)
    A fresh classifier is trained to tell a method's stretched excerpts from unstretched
    excerpts, with folds disjoint by recording, and its held-out accuracy is reported (0.5: the
    stretched audio cannot be told from music played at its own tempo). The test must not detect
    tempo itself: a true performance at another tempo is natural. What it sees is chosen for
    that (:func:`patches`): short patches (140 ms, at most about one note onset), each patch's own
    mean level removed (a slower performance of percussive music is quieter on average; that is
    tempo, not an artefact), and patches with and without an onset weighed equally in training and
    scoring, so the share of patches holding an onset, which grows with the tempo, tells nothing.
    ``eval/naturalness.py`` validates it on true-tempo renders: the true render at rate r against
    tempo-1 renders scores at chance, resampling and a phase vocoder well above it.
round trip (:func:`round_trip_db`)
    Stretch by r, then by 1/r: the log-mel distance to the original. A perfect stretcher (a true
    performance at the new tempo, then at the old one) returns the original: 0 dB.
band levels (:func:`band_level_change_db`)
    The level of each frequency band over the whole excerpt, output against input, dB. A slower or
    faster performance of sustained music in a room keeps its level.

Intervals are 95 % bootstrap intervals over recordings (each recording's excerpts resampled
together), paired where two methods are compared on the same recordings.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

PATCH_FRAMES = 12  # frames per patch: 140 ms at hop 11.6 ms
PATCH_STEP = 6
MEL_BANDS = 80
FLOOR_DB = -80.0  # below each excerpt's loudest mel bin
BAND_EDGES_HZ = (0.0, 250.0, 1000.0, 4000.0, 11000.0, 22050.0)
BOOTSTRAP = 2000


def _mono(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x if x.ndim == 1 else x.mean(axis=0)


def stft_size(sr: int) -> int:
    """n_fft of about 46 ms at ``sr`` (a power of two: 2048 at 44.1 kHz, 1024 at 22.05 kHz)."""
    return int(2 ** round(np.log2(0.0464 * sr)))


def log_mel(x, sr: int) -> np.ndarray:
    """Mono log-mel dB [80, T] (n_fft of 46 ms, hop a quarter of it, mel bands up to sr / 2),
    relative to the excerpt's loudest bin, floored at ``FLOOR_DB``."""
    import librosa

    n_fft = stft_size(sr)
    p = librosa.feature.melspectrogram(
        y=np.ascontiguousarray(_mono(x)), sr=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=MEL_BANDS, power=2.0
    )
    db = 10 * np.log10(np.maximum(p, 1e-20))
    return np.maximum(db - db.max(), FLOOR_DB).astype(np.float32)


def patches(x, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's view of an excerpt: (patches [K, 80, PATCH_FRAMES], onset [K] bool).

    Each patch has its own mean level removed. ``onset``: the patch holds a detected note onset
    (librosa's onset detector on the excerpt's log-mel) in its middle half, where the classifier
    sees the attack and what precedes it."""
    import librosa

    db = log_mel(x, sr)
    if db.shape[1] < PATCH_FRAMES:
        return np.zeros((0, MEL_BANDS, PATCH_FRAMES), np.float32), np.zeros(0, bool)
    strength = librosa.onset.onset_strength(S=db, sr=sr)
    hits = np.zeros(db.shape[1], bool)
    hits[librosa.onset.onset_detect(onset_envelope=strength, sr=sr)] = True
    starts = np.arange(0, db.shape[1] - PATCH_FRAMES + 1, PATCH_STEP)
    out = np.stack([db[:, s : s + PATCH_FRAMES] for s in starts])
    out -= out.mean(axis=(1, 2), keepdims=True)
    q = PATCH_FRAMES // 4
    onset = np.array([hits[s + q : s + PATCH_FRAMES - q].any() for s in starts])
    return out.astype(np.float32), onset


@dataclass
class Clip:
    """One excerpt's patches for a two-sample test; ``group``: its recording (or piece), which
    decides its fold."""

    group: str
    patches: np.ndarray
    onset: np.ndarray


def classifier() -> torch.nn.Module:
    """A small CNN on patches [B, 1, 80, PATCH_FRAMES] -> logit of 'stretched'."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d((2, 1)),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 1),
    )


def folds_of(groups: list[str], folds: int) -> dict[str, int]:
    """Each group's fold: groups ordered by a stable hash, dealt round-robin."""
    ordered = sorted(set(groups), key=lambda g: (zlib.crc32(g.encode()), g))
    return {g: i % folds for i, g in enumerate(ordered)}


def _strata(clips: list[Clip], label: int) -> list[tuple[np.ndarray, int]]:
    """(patches of one stratum, label): the onset and the other patches of ``clips``."""
    if not clips:
        return []
    x = np.concatenate([c.patches for c in clips])
    onset = np.concatenate([c.onset for c in clips])
    return [(x[onset == s], label) for s in (True, False) if (onset == s).any()]


def two_sample_test(
    real: list[Clip], fake: list[Clip], folds: int = 4, seed: int = 0, steps: int = 400, batch: int = 128
) -> dict:
    """Held-out accuracy of fresh classifiers telling ``fake`` patches from ``real`` ones.

    Groups (recordings) are dealt into ``folds``; for each fold a classifier trains on the other
    folds' groups and is scored on this fold's, so no recording is both trained and tested on.
    Training batches draw equally from the four strata (real or fake, with or without an onset);
    each group's score is the mean accuracy over the strata it has. Returns ``accuracy`` (mean over
    groups, 0.5: indistinguishable), ``ci`` (its 95 % bootstrap interval over groups) and
    ``per_group`` ({group: score}, for paired comparisons). Deterministic for a seed (one thread).
    """
    groups = [c.group for c in real + fake]
    if len(set(groups)) < folds:
        raise ValueError(f"a {folds}-fold test needs at least {folds} recordings, got {len(set(groups))}")
    fold = folds_of(groups, folds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs slower on more threads, and is deterministic on one
    try:
        per_group: dict[str, list[float]] = {}
        for k in range(folds):
            train = _strata([c for c in real if fold[c.group] != k], 0) + _strata(
                [c for c in fake if fold[c.group] != k], 1
            )
            net = _fit(train, seed * folds + k, steps, batch)
            with torch.no_grad():
                for clips, label in ((real, 0), (fake, 1)):
                    for c in clips:
                        if fold[c.group] != k or not len(c.patches):
                            continue
                        pred = (net(torch.from_numpy(c.patches[:, None] / 20.0)).squeeze(1) > 0).numpy()
                        hits = pred == bool(label)
                        for s in (True, False):
                            if (c.onset == s).any():
                                per_group.setdefault(c.group, []).append(float(hits[c.onset == s].mean()))
    finally:
        torch.set_num_threads(threads)
    scores = {g: float(np.mean(v)) for g, v in sorted(per_group.items())}
    values = np.array(list(scores.values()))
    return {"accuracy": float(values.mean()), "ci": bootstrap_ci(values, seed), "per_group": scores}


def _fit(strata: list[tuple[np.ndarray, int]], seed: int, steps: int, batch: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    each = max(1, batch // len(strata))
    for _ in range(steps):
        x = np.concatenate([s[rng.integers(0, len(s), each)] for s, _ in strata])
        y = torch.cat([torch.full((each,), float(label)) for _, label in strata])
        logit = net(torch.from_numpy(x[:, None] / 20.0)).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def bootstrap_ci(values, seed: int = 0, n: int = BOOTSTRAP) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``values`` (one per group)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return (float("nan"), float("nan"))
    means = v[np.random.default_rng(seed).integers(0, len(v), (n, len(v)))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def paired_difference(a: dict[str, float], b: dict[str, float], seed: int = 0) -> dict:
    """Mean of a - b over the groups both have, with its 95 % paired bootstrap interval."""
    common = sorted(set(a) & set(b))
    d = np.array([a[g] - b[g] for g in common])
    return {"difference": float(d.mean()) if len(d) else float("nan"), "ci": bootstrap_ci(d, seed), "groups": len(d)}


def round_trip_db(original, back, sr: int) -> float:
    """Log-mel distance (dB, :func:`gan_stretch.measures.metrics.log_mel_distance`) of an excerpt
    stretched by r and back by 1/r (``back``) to the excerpt itself."""
    from gan_stretch.measures.metrics import log_mel_distance

    return log_mel_distance(back, original, sr)


def band_level_change_db(output, original, sr: int, edges=BAND_EDGES_HZ) -> list[float]:
    """Per band of ``edges`` (Hz; the last band ends at sr / 2): the output's mean power over the
    whole excerpt against the original's, in dB (NaN for bands mostly above sr / 2 or silent
    in the original)."""
    import librosa

    n_fft = stft_size(sr)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)

    def band_power(x):
        p = np.abs(librosa.stft(np.ascontiguousarray(_mono(x)), n_fft=n_fft, hop_length=n_fft // 4)) ** 2
        return [
            float(p[(freqs >= lo) & (freqs < min(hi, sr / 2))].sum(axis=0).mean())
            if min(hi, sr / 2) - lo >= (hi - lo) / 2
            else np.nan  # half the band below sr / 2
            for lo, hi in zip(edges[:-1], edges[1:])
        ]

    out, ref = band_power(output), band_power(original)
    return [
        10 * np.log10(max(o, 1e-30) / r) if np.isfinite(r) and r > 1e-20 else float("nan") for o, r in zip(out, ref)
    ]
