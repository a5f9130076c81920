"""Shared fixtures: a tiny untrained model file and a tiny true-tempo corpus.

Everything runs on the CPU with one intra-op thread: on a 2-core machine that is busy with
something else, torch's default thread pool makes tiny convolutions 100x slower (threads spin
against each other), and a fixed thread count also keeps the float results reproducible.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocesses some tests start
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only, even where a GPU exists

SR = 22050


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a valid 'gan' model file with an untrained autoencoder and an identity generator."""
    from gan_stretch.models import AutoencoderConfig, FrameAutoencoder, GeneratorConfig, LatentGenerator
    from gan_stretch.pipeline import Model, model_meta, save_model
    from gan_stretch.spectral import SpectralConfig

    torch.manual_seed(0)
    spec = SpectralConfig()
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=spec.n_freq, hidden=[64, 32], latent=16))
    gen = LatentGenerator(GeneratorConfig(latent_dim=17, channels=16, dilations=[1, 2]))
    path = tmp_path_factory.mktemp("tiny_model") / "model.safetensors"
    save_model(path, Model("gan", spec, ae, gen, model_meta("gan", spec, ae, gen)))
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A true-tempo corpus of 3 pieces x 3 s at rates 1, 0.5 and 2 (fluidsynth renders, a few seconds).

    heldout=0.55 rather than 0.34: the split is a stable hash of the piece name, and for the first
    three pieces of the corpus (hash fractions 0.502, 0.617, 0.612) 0.34 holds none out, while 0.55
    holds out exactly one (bach/bwv1.6) and leaves two for training.
    """
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed (apt-get install fluidsynth): cannot render a corpus")
    from gan_stretch.data.corpus import build_true_tempo
    from gan_stretch.data.render import find_soundfont
    from gan_stretch.errors import GanStretchError

    try:
        find_soundfont()
    except GanStretchError as e:
        pytest.skip(f"no General MIDI soundfont: {e}")
    out = tmp_path_factory.mktemp("corpus") / "true-tempo"
    return build_true_tempo(out, pieces=3, heldout=0.55, seconds=3.0, rates=(0.5, 2.0))


def music_like(n: int, sr: int = SR, seed: int = 0, channels: int | None = None) -> np.ndarray:
    """A deterministic, non-silent test signal: a few harmonic tones with onsets, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    shape = (channels, n) if channels else (n,)
    out = np.zeros(shape, np.float64)
    for k in range(4):
        f0 = rng.uniform(150, 900)
        onset = rng.uniform(0, t[-1] * 0.6)
        env = np.where(t >= onset, np.exp(-(t - onset) * rng.uniform(1, 4)), 0.0)
        tone = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) / h for h in (1, 2, 3))
        out += 0.15 * env * tone
    out += 0.005 * rng.standard_normal(shape)
    return out.astype(np.float32)
