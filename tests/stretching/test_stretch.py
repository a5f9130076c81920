"""The Stretcher end to end: layouts, lengths, types, errors, and the phase pipeline keeping the frequency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_stretch.dsp import onset_detection, phase_vocoder, spectrum, synthesis, timemap
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import AudioError, ConfigError, RateError
from gan_stretch.models.model_file import load_model
from gan_stretch.stretching.stretcher import Stretcher

from conftest import music_like

SR = 22050


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    """Peak of a Hann-windowed, 16x zero-padded FFT, refined by a parabola through the log magnitudes."""
    x = np.asarray(x, np.float64)
    n_fft = 1 << int(math.ceil(math.log2(len(x) * 16)))
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-30)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * sr / n_fft


def sine(freq: float, seconds: float = 2.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def test_dominant_frequency_helper():
    """The measuring stick itself: exact on a sine, and it sees a plain resampling's pitch change."""
    assert dominant_frequency(sine(440.0), SR) == pytest.approx(440.0, rel=1e-4)
    assert dominant_frequency(sine(1234.5, 0.5), SR) == pytest.approx(1234.5, rel=1e-4)
    resampled = np.interp(np.arange(0, SR * 2, 2.0), np.arange(SR * 2), sine(440.0))  # twice as fast
    assert dominant_frequency(resampled, SR) == pytest.approx(880.0, rel=1e-3)


# --- layouts, lengths and types (tiny untrained model) ------------------------------------------


@pytest.fixture(scope="module")
def stretcher(tiny_model):
    return Stretcher(tiny_model, device="cpu", griffin_lim=2)


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_mono_numpy(stretcher, rate):
    x = music_like(SR + 123)
    y = stretcher.stretch(x, SR, rate)
    assert isinstance(y, np.ndarray)
    assert y.shape == (round(len(x) / rate),)
    assert y.dtype == np.float32
    assert np.isfinite(y).all() and np.abs(y).max() > 0


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_stereo_numpy(stretcher, rate):
    x = music_like(SR, channels=2)
    y = stretcher.stretch(x, SR, rate)
    assert isinstance(y, np.ndarray)
    assert y.shape == (2, round(x.shape[-1] / rate))
    assert np.isfinite(y).all()


def test_each_channel_has_its_own_loudness_reference(tiny_active):
    """The model sees each channel relative to its own loudest bin, so a quieter channel is
    stretched as a scaled copy of itself at full level (the stereo image is kept): a signal at
    -12 dB next to a full-level one comes out as the full-level stretch times the gain (to 1e-4;
    with one reference for all channels it is 1.5 % apart, measured), and the loud channel as its
    own mono stretch."""
    s = Stretcher(tiny_active, device="cpu")
    x = music_like(SR, seed=5)
    gain = 10 ** (-12 / 20)
    quiet = (x * gain).astype(np.float32)
    alone = s.stretch(x, SR, 0.8)
    gap = lambda y: np.sqrt(((y - alone * gain) ** 2).mean() / (y**2).mean())
    assert gap(s.stretch(quiet, SR, 0.8)) < 1e-4
    y = s.stretch(np.stack([x, quiet]), SR, 0.8)
    np.testing.assert_allclose(y[0], alone, atol=1e-6)
    assert gap(y[1]) < 1e-4, gap(y[1])


@pytest.mark.parametrize("rate", [0.5, 2.0])
@pytest.mark.parametrize("shape", [(SR,), (2, SR)])
def test_torch_in_torch_out(stretcher, rate, shape):
    x = torch.from_numpy(music_like(SR, channels=2 if len(shape) == 2 else None).astype(np.float64))
    y = stretcher.stretch(x, SR, rate)
    assert isinstance(y, torch.Tensor)
    assert y.shape == (*shape[:-1], round(SR / rate))
    assert y.device == x.device
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("sr,n,rate", [(16000, 16000, 2.0), (44100, 44100 + 7, 0.5), (22050, 1001, 1.5)])
def test_other_sample_rates_and_odd_lengths(stretcher, sr, n, rate):
    x = music_like(n, sr=sr)
    y = stretcher.stretch(x, sr, rate)
    assert y.shape == (round(n / rate),)
    assert np.isfinite(y).all() and np.abs(y).max() > 0


def test_same_input_same_output(stretcher):
    x = music_like(SR)
    np.testing.assert_array_equal(stretcher.stretch(x, SR, 1.5), stretcher.stretch(x, SR, 1.5))


@pytest.mark.parametrize("floor", [0, -3.0, True, float("nan"), float("inf"), "60"])
def test_phase_floor_is_checked(tiny_model, floor):
    with pytest.raises(ConfigError, match="phase_floor_db"):
        Stretcher(tiny_model, device="cpu", phase_floor_db=floor)


def test_phase_floor_restarts_only_quiet_bins(tiny_model):
    """phase_floor_db: a floor no bin of the input reaches changes nothing; on music that starts
    after near silence (noise 180 dB down: rounding), the bins read there restart and the output
    differs."""
    x = music_like(SR, seed=2)
    plain = Stretcher(tiny_model, device="cpu", griffin_lim=2)
    low = Stretcher(tiny_model, device="cpu", griffin_lim=2, phase_floor_db=400)
    np.testing.assert_array_equal(low.stretch(x, SR, 1.5), plain.stretch(x, SR, 1.5))
    hush = 1e-9 * np.random.default_rng(0).standard_normal(SR // 2)
    gap = np.concatenate([hush, x[: SR // 2]])
    floor = Stretcher(tiny_model, device="cpu", griffin_lim=2, phase_floor_db=100)
    a, b = floor.stretch(gap, SR, 1.5), plain.stretch(gap, SR, 1.5)
    assert a.shape == b.shape and np.isfinite(a).all() and not np.allclose(a, b)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), 10, "abc"])
def test_stretch_rejects_bad_rates(stretcher, rate):
    with pytest.raises(RateError):
        stretcher.stretch(music_like(SR), SR, rate)


@pytest.mark.parametrize(
    "audio,match",
    [
        (np.zeros(SR, np.float32), "silent"),
        (np.array([0.1, np.nan] * 1000, np.float32), "NaN"),
        (np.zeros(0, np.float32), "empty"),
        (np.ones((SR, 2), np.float32), "transposed"),
        (np.ones((2, 2, 100), np.float32), "shape"),
    ],
)
def test_stretch_rejects_bad_audio(stretcher, audio, match):
    with pytest.raises(AudioError, match=match):
        stretcher.stretch(audio, SR, 2.0)


def test_rate_is_required_and_sample_rate_checked(stretcher):
    with pytest.raises(RateError):
        stretcher.stretch(music_like(SR), SR)
    with pytest.raises(RateError):
        stretcher.stretch(music_like(SR), SR, 2.0, duration=0.5)
    for sr in (0, 22050.5, 10_000_000):
        with pytest.raises(AudioError, match="sample rate"):
            stretcher.stretch(music_like(SR), sr, 2.0)


def test_duration_and_time_map(stretcher):
    x = music_like(SR)
    assert stretcher.stretch(x, SR, duration=0.75).shape == (round(0.75 * SR),)
    # anchors: the first half plays twice as fast, the rest at rate 1 (no overall rate given)
    y = stretcher.stretch(x, SR, time_map=[(SR // 2, SR // 4)])
    assert y.shape == (SR // 4 + (SR - SR // 2),)
    with pytest.raises(RateError):
        stretcher.stretch(x, SR, duration=10.0)  # rate 0.1
    with pytest.raises(RateError):
        stretcher.stretch(x, SR, time_map=[(SR // 2, SR // 4), (SR // 4, SR // 2)])  # not monotonic


def test_module_level_stretch(tiny_model):
    import gan_stretch

    x = music_like(SR)
    y = gan_stretch.stretch(x, SR, 2.0, checkpoint=tiny_model, device="cpu", griffin_lim=2)
    assert y.shape == (SR // 2,)
    np.testing.assert_array_equal(y, Stretcher(tiny_model, device="cpu", griffin_lim=2).stretch(x, SR, 2.0))


# --- pitch (the models' pitch is pinned in test_promises.py) ------------------------------------


def test_saved_and_loaded_model_stretches_identically(tiny_active, tmp_path):
    from gan_stretch.models.model_file import save_model

    path = tmp_path / "active.safetensors"
    save_model(path, tiny_active)
    x = sine(440.0, 1.0)
    a = Stretcher(tiny_active, device="cpu", griffin_lim=2).stretch(x, SR, 2.0)
    b = Stretcher(load_model(path), device="cpu", griffin_lim=2).stretch(x, SR, 2.0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_phase_propagation_alone_keeps_the_frequency(rate):
    """True magnitudes, interpolated in time, plus the propagated phase: no model involved."""
    cfg = SpectralConfig()
    x = torch.from_numpy(sine(440.0))
    n_out = round(len(x) / rate)
    spec = spectrum.stft(x, cfg)
    pos = timemap.stretch_positions(spec.shape[-1], cfg.n_frames(n_out), rate)
    mag = timemap.time_scale(spec.abs().T, pos).T
    phase = phase_vocoder.propagate_phase(spec, pos, cfg)
    # n_iter=0 is the propagated phase alone. Its level comes out up to ~13% low at rate 0.5: the
    # first input frame is a half window (centred STFT), and every later frame inherits the phase
    # offsets between bins of that frame (as in librosa's phase vocoder); Griffin-Lim removes it.
    for n_iter, level_tol in ((0, 0.2), (4, 0.03)):
        y = synthesis.reconstruct(mag, phase, cfg, n_out, n_iter=n_iter).numpy()
        assert y.shape == (n_out,)
        assert dominant_frequency(y[2048:-2048], SR) == pytest.approx(440.0, rel=0.01)
        # the phase is coherent: the overlap-add does not cancel itself out
        assert np.sqrt((y[2048:-2048] ** 2).mean()) == pytest.approx(0.5 / np.sqrt(2), rel=level_tol)


@pytest.mark.parametrize("sr", [22050, 44100])
def test_residual_decoding_keeps_the_autoencoders_error_out_of_the_output(tiny_model, sr, monkeypatch):
    """At rate 1 with a refiner that changes nothing, the output is the input (to float and
    locking precision) even though the untrained autoencoder reconstructs frames badly; decoding
    the latents alone passes that error on."""
    from gan_stretch.dsp.timemap import TimeMap

    monkeypatch.setattr(TimeMap, "is_identity", False)  # through the model (stretch() returns the input at rate 1)
    x = music_like(2 * sr, sr=sr)
    snr = lambda y: 10 * np.log10((x**2).sum() / ((y - x) ** 2).sum())
    residual = Stretcher(tiny_model, device="cpu").stretch(x, sr, 1.0)
    plain = Stretcher(tiny_model, device="cpu", residual=False).stretch(x, sr, 1.0)
    assert snr(residual) > 40, snr(residual)
    assert snr(plain) < 10, snr(plain)


def test_griffin_lim_holds_the_frames_it_is_told_to():
    """Held frames leave Griffin-Lim exactly as given; the others are refined around them."""
    cfg = SpectralConfig()
    spec = spectrum.stft(torch.from_numpy(music_like(2 * 22050)), cfg)
    mag, phase = spectrum.magnitude(spec), spectrum.angle(spec) + 0.3  # a phase to refine
    hold = torch.zeros(spec.shape[-1], dtype=torch.bool)
    hold[20:27] = True
    out = synthesis.griffin_lim(mag, phase, cfg, 2, hold=hold)
    given = spectrum.polar(mag, phase)
    assert torch.equal(out[..., hold], given[..., hold])
    assert not torch.allclose(out[..., ~hold], given[..., ~hold], atol=1e-3)
    torch.testing.assert_close(spectrum.magnitude(out), mag, rtol=1e-4, atol=1e-5)


def test_attack_frames_are_held_where_the_music_is_slowed_down(tiny_model):
    """refine_attacks=None (auto) is the held variant when slowing down and the refined one when
    speeding up, sample for sample; the two differ on music with attacks."""
    x = music_like(3 * 22050, seed=3)
    st = {k: Stretcher(tiny_model, device="cpu", transients=True, refine_attacks=k) for k in (True, False, None)}
    for rate, same in ((0.5, False), (1.5, True)):
        y = {k: s.stretch(x, 22050, rate) for k, s in st.items()}
        assert not np.array_equal(y[True], y[False])
        assert np.array_equal(y[None], y[same])


def test_attack_regions_are_the_frames_whose_windows_reach_the_onset(tiny_model):
    """By default each isolated attack plays its onset's frame, 2 frames before it and 2 after at
    speed 1 (every frame whose 4-hop window reaches the onset); attack_span sets other counts."""
    from gan_stretch.dsp import timemap

    cfg = SpectralConfig()
    tmap = timemap.from_rate(10 * SR, 0.5)
    onsets = [86 * cfg.hop, 258 * cfg.hop]  # on frame centres, far apart: both fit
    for span, frames in ((onset_detection.ATTACK_FRAMES, 5), ((3, 3), 7), ((1, 0), 2)):
        plan = timemap.frame_plan(tmap, cfg, cfg.n_frames(10 * SR), onsets, span=span)
        assert int(plan.attacks.sum()) == 2 * frames and int(plan.resets.sum()) == 2
        # inside a region the input is read at speed 1: one input frame per output frame
        steps = torch.diff(plan.positions)[plan.attacks[1:] & plan.attacks[:-1]]
        torch.testing.assert_close(steps, torch.ones_like(steps))
    assert onset_detection.ATTACK_FRAMES == (2, 2)
    assert Stretcher(tiny_model, device="cpu").attack_span == (2, 2)


@pytest.mark.parametrize("bad", [(2,), (1, 2, 3), (-1, 2), (2, 9), (True, 2), (1.5, 2), "2:2"])
def test_attack_span_must_be_two_small_frame_counts(tiny_model, bad):
    with pytest.raises(ConfigError, match="attack_span"):
        Stretcher(tiny_model, device="cpu", attack_span=bad)
