"""Promises for real files: full band at any sample rate, coherent channels, time map files,
the packaged model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gan_stretch import RateError, Stretcher
from gan_stretch.models.model_file import DEFAULT_CHECKPOINT

from conftest import music_like


@pytest.fixture(scope="module")
def default():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.fail(f"the packaged model is missing: {DEFAULT_CHECKPOINT}")
    return Stretcher(device="cpu", griffin_lim=4)


def band_energy(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_44k_input_keeps_its_band_above_the_models(default, rate):
    sr = 44100
    t = np.arange(2 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 15000 * t)).astype(np.float32)
    y = default.stretch(x, sr, rate)
    assert y.shape == (round(len(x) / rate),)
    share_in, share_out = band_energy(x, sr, 14000, 16000), band_energy(y, sr, 14000, 16000)
    assert share_out > 0.5 * share_in, (share_in, share_out)  # the 15 kHz tone survives (model band ends at 11 kHz)


@pytest.mark.parametrize("sr", [8000, 16000, 48000, 96000])
def test_sample_rates_from_8_to_96_khz(default, sr):
    x = music_like(sr // 2, sr=sr, channels=2)
    y = default.stretch(x, sr, 1.25)
    assert y.shape == (2, round(x.shape[1] / 1.25)) and np.isfinite(y).all() and np.abs(y).max() > 1e-3


def test_identical_channels_stay_identical(default):
    x = music_like(22050 * 2)
    y = default.stretch(np.stack([x, x]), 22050, 0.75)
    assert np.array_equal(y[0], y[1])


def test_panned_source_keeps_its_place_in_the_stereo_image(default):
    x = music_like(22050 * 2, seed=3)
    y = default.stretch(np.stack([0.5 * x, x]), 22050, 1.5)
    ratio = np.sqrt((y[0] ** 2).mean() / (y[1] ** 2).mean())
    assert abs(20 * np.log10(ratio / 0.5)) < 1.0, ratio  # within 1 dB of the input's -6 dB balance


def test_many_channels(default):
    x = music_like(22050, channels=6)
    assert default.stretch(x, 22050, 2.0).shape == (6, 11025)


def test_time_map_file(default, tmp_path):
    sr = 22050
    x = music_like(2 * sr)
    good = tmp_path / "map.txt"
    good.write_text(f"# source target\n{sr // 2} {sr}\n{sr} {sr + sr // 4}\n")
    y = default.stretch(x, sr, time_map=good)  # slow for 0.5 s, fast for 0.5 s, then rate 1
    assert y.shape == (sr + sr // 4 + sr,)
    y2 = default.stretch(x, sr, 1.0, time_map=good)  # the overall rate fixes the end
    assert y2.shape == (2 * sr,)
    for text, match in [
        (f"{sr} {sr}\n{sr // 2} {sr * 2}\n", "monotonic"),
        ("10 x\n", "line 1"),
        ("", "no 'source_frame"),
        (f"{sr // 2} {sr * 10}\n", "rate"),
        (f"{sr * 5} {sr}\n", "beyond"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(RateError, match=match):
            default.stretch(x, sr, time_map=bad)


@pytest.mark.parametrize(
    "name,kind,recipe",
    [("default", "generator", "recipes/default/finetune.yaml"), ("mapper", "mapper", "recipes/default/mapper.yaml")],
)
def test_packaged_models_are_trained_refiners(name, kind, recipe):
    """Both shipped models load by name, name the recipe file that trained them and are of the kind
    a run of it exports (the default's recipe builds no discriminator), play attacks at speed 1 as
    they were trained to, and their refiners change the interpolated latents (not the identity
    they start as)."""
    import torch

    from gan_stretch.train.recipes import load_recipe

    stretcher = Stretcher(name, device="cpu")
    assert stretcher.model.kind == kind and stretcher.model.meta["recipe"]["file"] == recipe
    assert (Path(__file__).resolve().parents[1] / recipe).is_file()
    made = load_recipe(Path(__file__).resolve().parents[1] / recipe)
    assert kind == (made.stage if made.stage != "gan" else "gan" if made.discriminators() else "generator")
    assert stretcher.transients and stretcher.decays
    refiner = stretcher.model.refiner
    z = torch.linspace(-0.5, 0.5, 32 * refiner.cfg.latent_dim).reshape(1, 32, -1)
    extra = ()
    if name == "default":  # tuned with per-frame features, averaged with the generator it started from
        assert stretcher.model.frame_features == 2 and stretcher.model.meta["init_blend"] == 0.5
        extra = (torch.zeros(1, 32, stretcher.model.frame_features),)
    with torch.no_grad():
        assert (refiner(z, torch.tensor([2.0]), *extra) - z).abs().max() > 1e-3
