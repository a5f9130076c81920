"""The Stretcher end to end: layouts, lengths, types, and that pitch survives a stretch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import music_like

from gan_stretch import spectral
from gan_stretch.data.cache import db_frames
from gan_stretch.errors import AudioError, RateError
from gan_stretch.models import AutoencoderConfig, FrameAutoencoder
from gan_stretch.pipeline import Model, Stretcher, load_model, model_meta
from gan_stretch.spectral import SpectralConfig

SR = 22050


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    """Peak of a Hann-windowed, 16x zero-padded FFT, refined by a parabola through the log magnitudes."""
    x = np.asarray(x, np.float64)
    n_fft = 1 << int(math.ceil(math.log2(len(x) * 16)))
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[k - 1:k + 2] + 1e-30)
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
    x[1] *= 0.5
    y = stretcher.stretch(x, SR, rate)
    assert isinstance(y, np.ndarray)
    assert y.shape == (2, round(x.shape[-1] / rate))
    assert np.isfinite(y).all()
    # one reference level for both channels: the quieter input channel stays quieter
    assert np.abs(y[1]).mean() < np.abs(y[0]).mean()


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


@pytest.mark.parametrize("rate", [0, -1, float("nan"), 10, "abc"])
def test_stretch_rejects_bad_rates(stretcher, rate):
    with pytest.raises(RateError):
        stretcher.stretch(music_like(SR), SR, rate)


@pytest.mark.parametrize("audio,match", [
    (np.zeros(SR, np.float32), "silent"),
    (np.array([0.1, np.nan] * 1000, np.float32), "NaN"),
    (np.zeros(0, np.float32), "empty"),
    (np.ones((SR, 2), np.float32), "transposed"),
    (np.ones((2, 2, 100), np.float32), "shape"),
])
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


@pytest.mark.parametrize("griffin_lim", [0, 4])
@pytest.mark.parametrize("rate", [0.5, 1.7])
def test_streaming_in_small_blocks_matches_one_block(griffin_lim, rate):
    """Blocks of 16 output frames (with their margins) give what a single block gives."""
    from gan_stretch.models import GeneratorConfig, LatentGenerator

    torch.manual_seed(0)
    cfg = SpectralConfig()
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=cfg.n_freq, hidden=[64, 32], latent=16))
    gen = LatentGenerator(GeneratorConfig(latent_dim=17, channels=16, dilations=[1, 2]))
    with torch.no_grad():
        torch.nn.init.normal_(gen.outp.weight, std=0.05)  # a generator that does something
    model = Model("gan", cfg, ae.eval(), gen.eval(), model_meta("gan", cfg, ae, gen))
    x = music_like(3 * SR, channels=2)
    one = Stretcher(model, device="cpu", griffin_lim=griffin_lim, chunk_frames=4096).stretch(x, SR, rate)
    many = Stretcher(model, device="cpu", griffin_lim=griffin_lim, chunk_frames=16).stretch(x, SR, rate)
    assert many.shape == one.shape == (2, round(3 * SR / rate))
    assert np.sqrt(((many - one) ** 2).mean() / (one ** 2).mean()) < 1e-4


def test_module_level_stretch(tiny_model):
    import gan_stretch

    x = music_like(SR)
    y = gan_stretch.stretch(x, SR, 2.0, checkpoint=tiny_model, device="cpu", griffin_lim=2)
    assert y.shape == (SR // 2,)
    np.testing.assert_array_equal(y, Stretcher(tiny_model, device="cpu", griffin_lim=2).stretch(x, SR, 2.0))


# --- pitch is kept ------------------------------------------------------------------------------

TONES = [440.0, 262.0, 731.0, 1480.0]  # 440 Hz and three others in 200-2000 Hz


def train_sine_autoencoder(seed: int = 0, steps: int = 500) -> FrameAutoencoder:
    """A FrameAutoencoder(hidden=[128, 64], latent=16) that has learned the frames of TONES.

    A sine frame is a handful of peak bins over ~1000 floor bins, so the frames of different
    tones are nearly the same vector, and a freshly initialised encoder maps them all to nearly
    the same code: plain L1 training sits for hundreds of steps on the plateau where the decoder
    outputs one tone (or the average) for all of them. What gets it off within a few hundred
    steps: a first encoder layer that starts centred on the mean frame and scaled up 20x (so the
    tones' codes start apart instead of in saturated tanh units), peak bins weighted 20x, and a
    squared error on the decoder's output before its [-1, 1] clamp (no gradient where it clamps).
    Checked on 8 seeds: every one decodes every tone at its own bin.
    """
    cfg = SpectralConfig()
    rng = np.random.default_rng(seed)
    # steady-state frames of each tone (every 4th: they are all alike), at a few levels
    frames = torch.cat([db_frames(sine(f, 1.0, amp=rng.uniform(0.1, 0.8)), cfg)[0][8:-8:4] for f in TONES])
    weight = 1 + 20 * (frames > -60)
    shapes = 1 + 2 * (frames - frames.amax(-1, keepdim=True)) / cfg.db_range  # the encoder's input scale
    torch.manual_seed(seed)
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=cfg.n_freq, hidden=[128, 64], latent=16))
    first = ae.encoder[0]
    with torch.no_grad():
        first.weight.mul_(20)
        first.bias.copy_(-first.weight @ shapes.mean(0))
    opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
    for _ in range(steps):
        code = ae.encode(frames)[..., :-1]
        loss = ((ae.decoder(code) - shapes) ** 2 * weight).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ae.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def sine_model():
    """A 'gan' model (identity generator: plain latent interpolation) whose autoencoder knows TONES.

    With an untrained autoencoder the decoded magnitudes are meaningless, so the pitch tests need
    one that can represent sines.
    """
    from gan_stretch.models import GeneratorConfig, LatentGenerator

    cfg = SpectralConfig()
    ae = train_sine_autoencoder()
    gen = LatentGenerator(GeneratorConfig(latent_dim=17, channels=16, dilations=[1, 2])).eval()
    return Model("gan", cfg, ae, gen, model_meta("gan", cfg, ae, gen))


def test_sine_autoencoder_decodes_each_tone_at_its_own_frequency(sine_model):
    """The precondition of the pitch tests: the decoded spectrum of each tone peaks at that tone."""
    cfg = sine_model.spectral
    for f in TONES:
        frames, _ = db_frames(sine(f, 0.5), cfg)
        decoded = sine_model.autoencoder(frames[5])
        assert abs(int(decoded.argmax()) - f * cfg.n_fft / cfg.sample_rate) <= 1.5, f


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_stretch_keeps_the_pitch_of_a_sine(sine_model, rate):
    x = sine(440.0)
    y = Stretcher(sine_model, device="cpu", griffin_lim=8).stretch(x, SR, rate)
    assert y.shape == (round(len(x) / rate),)
    core = y[2048:-2048]  # away from the edges
    assert dominant_frequency(core, SR) == pytest.approx(440.0, rel=0.01)
    # ... and it is a stretched tone, not noise: the 440 Hz peak stands well above everything else.
    mag = np.abs(np.fft.rfft(core * np.hanning(len(core))))
    freqs = np.fft.rfftfreq(len(core), 1 / SR)
    assert mag[np.abs(freqs - 440) < 30].max() > 1.5 * mag[np.abs(freqs - 440) >= 30].max()
    assert np.sqrt((core ** 2).mean()) > 0.05


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_stretch_keeps_the_pitch_of_each_tone(sine_model, rate):
    """Not a model that always says 440: every tone comes out at its own frequency."""
    stretcher = Stretcher(sine_model, device="cpu", griffin_lim=4)
    for f in TONES[1:]:
        y = stretcher.stretch(sine(f, 1.0), SR, rate)
        assert dominant_frequency(y[2048:-2048], SR) == pytest.approx(f, rel=0.01), f


def test_saved_and_loaded_model_stretches_identically(sine_model, tmp_path):
    from gan_stretch.pipeline import save_model

    path = tmp_path / "sine.safetensors"
    save_model(path, sine_model)
    x = sine(440.0, 1.0)
    a = Stretcher(sine_model, device="cpu", griffin_lim=2).stretch(x, SR, 2.0)
    b = Stretcher(load_model(path), device="cpu", griffin_lim=2).stretch(x, SR, 2.0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_phase_propagation_alone_keeps_the_frequency(rate):
    """True magnitudes, interpolated in time, plus the propagated phase: no model involved."""
    cfg = SpectralConfig()
    x = torch.from_numpy(sine(440.0))
    n_out = round(len(x) / rate)
    spec = spectral.analyze(x, cfg)
    pos = spectral.stretch_positions(spec.shape[-1], cfg.n_frames(n_out), rate)
    mag = spectral.time_scale(spec.abs().T, pos).T
    phase = spectral.propagate_phase(spec, pos, cfg)
    # n_iter=0 is the propagated phase alone. Its level comes out up to ~13% low at rate 0.5: the
    # first input frame is a half window (centred STFT), and every later frame inherits the phase
    # offsets between bins of that frame (as in librosa's phase vocoder); Griffin-Lim removes it.
    for n_iter, level_tol in ((0, 0.2), (4, 0.03)):
        y = spectral.reconstruct(mag, phase, cfg, n_out, n_iter=n_iter).numpy()
        assert y.shape == (n_out,)
        assert dominant_frequency(y[2048:-2048], SR) == pytest.approx(440.0, rel=0.01)
        # the phase is coherent: the overlap-add does not cancel itself out
        assert np.sqrt((y[2048:-2048] ** 2).mean()) == pytest.approx(0.5 / np.sqrt(2), rel=level_tol)


@pytest.mark.parametrize("sr", [22050, 44100])
def test_residual_decoding_keeps_the_autoencoders_error_out_of_the_output(tiny_model, sr, monkeypatch):
    """At rate 1 with a refiner that changes nothing, the output is the input (to float and
    locking precision) even though the untrained autoencoder reconstructs frames badly; decoding
    the latents alone passes that error on."""
    from gan_stretch.timemap import TimeMap
    monkeypatch.setattr(TimeMap, "is_identity", False)  # through the model (stretch() returns the input at rate 1)
    x = music_like(2 * sr, sr=sr)
    snr = lambda y: 10 * np.log10((x ** 2).sum() / ((y - x) ** 2).sum())
    residual = Stretcher(tiny_model, device="cpu").stretch(x, sr, 1.0)
    plain = Stretcher(tiny_model, device="cpu", residual=False).stretch(x, sr, 1.0)
    assert snr(residual) > 40, snr(residual)
    assert snr(plain) < 10, snr(plain)
