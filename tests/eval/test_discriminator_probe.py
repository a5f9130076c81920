"""eval/discriminator_probe.py: a recordings discriminator trained alone on own-tempo windows
against time-scaled ones, scored on held-out draws."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from eval import discriminator_probe
from gan_stretch.data.cache import RecordingLatents


def texture_recordings(f: int = 129, frames: int = 200, recordings: int = 6) -> RecordingLatents:
    """Recordings whose levels flicker frame to frame, and their 'time-scaled' frames: the same
    flicker averaged with the next frame (what reading between frames does), at two rates."""
    g = torch.Generator().manual_seed(0)
    real, src = [], []
    for _ in range(recordings):
        level = -40 - 20 * torch.rand(1, f, generator=g)
        rough = (level + 4 * torch.randn(frames + 1, f, generator=g)).clamp(-120, 0)
        real.append(rough[:frames])
        src += [0.5 * (rough[1:] + rough[:-1])] * 2  # rates 0.5 and 2 alike
    lengths = np.full(recordings, frames)
    offsets = np.arange(recordings) * frames
    real_db, source_db = torch.cat(real), torch.cat(src)
    latent = lambda x: x[:, :17].clone()  # noqa: E731  (a stand-in latent: the lowest bins)
    return RecordingLatents(
        latent(real_db), offsets, lengths, np.arange(recordings),
        latent(source_db), np.arange(2 * recordings) * frames, np.full(2 * recordings, frames),
        np.tile([0.5, 2.0], recordings), np.repeat(np.arange(recordings), 2),
        [f"r{k}" for k in range(recordings)], [f"x{k}" for k in range(recordings)],
        None, real_db, source_db,
    )  # fmt: skip


def test_the_probe_scores_held_out_windows_per_rate_and_the_change_plane_sees_texture():
    recs = texture_recordings()
    model = SimpleNamespace(
        spectral=SimpleNamespace(n_freq=129, sample_rate=22050, db_range=120.0),
        autoencoder=SimpleNamespace(cfg=SimpleNamespace(latent_dim=17)),
    )
    recipe = SimpleNamespace(d_channels=8, d_layers=2, spec_d_channels=8, d_lr=1e-3, window=32, rec_batch=16)
    found = {}
    for name in ("spectrogram", "spectrogram+change", "spectrogram+change, relative"):
        rows = discriminator_probe.probe(
            recs, recipe, discriminator_probe.PROBES[name], model, steps=60, every=30, seed=0
        )
        assert {(r["step"], r["rate"]) for r in rows} == {(s, q) for s in (0, 30, 60) for q in ("all", 0.5, 2.0)}
        assert all(r["told_apart"] == 0.5 for r in rows if r["step"] == 0)  # untrained: all one side
        found[name] = next(r["told_apart"] for r in rows if r["step"] == 60 and r["rate"] == "all")
    assert found["spectrogram+change"] > 0.9 and found["spectrogram"] < 0.7, found
    assert found["spectrogram+change, relative"] > 0.9, found  # texture, not level, is what it sees
    page = discriminator_probe.page([{"probe": "p", **r} for r in rows], "python eval/discriminator_probe.py ...")
    assert "| p | " in page and "| 60 | " in page
