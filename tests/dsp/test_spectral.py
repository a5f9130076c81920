"""STFT settings, time positions, interpolation, phase propagation and reconstruction."""

from __future__ import annotations

import math

import pytest
import torch

from gan_stretch.dsp import phase_vocoder, spectrum, synthesis, timemap
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import RateError

CFG = SpectralConfig()
N = 22050 * 2
RATES = [0.25, 0.5, 1.0, 1.5, 2.0, 4.0]


def random_signal(n: int = N, seed: int = 0, lead=()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(*lead, n, generator=g)


def test_spectral_config():
    assert CFG.n_freq == 1025
    assert CFG.n_frames(N) == N // 512 + 1
    assert SpectralConfig.from_dict({**CFG.to_dict(), "unrelated": 1}) == CFG
    assert SpectralConfig.from_dict({"hop": 256}).hop == 256


@pytest.mark.parametrize("rate", RATES)
def test_stretch_positions_and_time_scale_lengths(rate):
    n_in = CFG.n_frames(N)
    n_out = CFG.n_frames(round(N / rate))
    pos = timemap.stretch_positions(n_in, n_out, rate)
    assert pos.shape == (n_out,)
    assert pos[0] == 0
    assert (pos >= 0).all() and (pos <= n_in - 1).all()
    assert (pos.diff() >= 0).all()
    # Unclamped steps are exactly `rate` input frames per output frame...
    inner = pos[pos < n_in - 1]
    torch.testing.assert_close(inner.diff(), torch.full_like(inner.diff(), rate))
    # ... and the output spans the whole input.
    assert n_in - 1 - pos[-1] <= rate + 1e-6
    x = torch.randn(2, n_in, 7)
    y = timemap.time_scale(x, pos)
    assert y.shape == (2, n_out, 7)


def test_time_scale_exact_rows_and_interpolation():
    x = torch.randn(3, 10, 5)
    pos = torch.tensor([0.0, 3.0, 9.0, 4.0, 4.0])
    torch.testing.assert_close(timemap.time_scale(x, pos), x[:, [0, 3, 9, 4, 4]], rtol=0, atol=0)
    mid = timemap.time_scale(x, torch.tensor([2.5, 7.25]))
    torch.testing.assert_close(mid[:, 0], 0.5 * (x[:, 2] + x[:, 3]))
    torch.testing.assert_close(mid[:, 1], 0.75 * x[:, 7] + 0.25 * x[:, 8])
    # Positions outside the sequence are clamped to its ends.
    edge = timemap.time_scale(x, torch.tensor([-3.0, 9.0, 42.0]))
    torch.testing.assert_close(edge, x[:, [0, 9, 9]], rtol=0, atol=0)


@pytest.mark.parametrize("lead", [(), (2,)])
def test_analyze_synthesize_round_trip(lead):
    x = random_signal(lead=lead)
    spec = spectrum.stft(x, CFG)
    assert spec.shape == (*lead, CFG.n_freq, CFG.n_frames(N))
    assert spec.is_complex()
    y = spectrum.istft(spec, CFG, N)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-4


def test_db_conversion_round_trip():
    mag = spectrum.stft(random_signal(8192), CFG).abs()
    ref = spectrum.reference_db(mag)
    assert ref == pytest.approx(20 * math.log10(mag.max().item()), abs=1e-4)
    db = spectrum.magnitude_to_db(mag, ref, CFG)
    assert db.max() == pytest.approx(0.0, abs=1e-5)
    assert db.min() >= -CFG.db_range
    back = spectrum.db_to_magnitude(db, ref)
    kept = db > -CFG.db_range + 1  # bins above the floor survive the round trip
    torch.testing.assert_close(back[kept], mag[kept], rtol=1e-4, atol=1e-9)
    # A per-channel reference broadcasts over [C, F, T].
    db2 = spectrum.magnitude_to_db(torch.stack([mag, mag]), torch.stack([ref, ref - 6]), CFG)
    torch.testing.assert_close(db2[1], (db + 6).clamp(-CFG.db_range, 0))


@pytest.mark.parametrize(
    "n",
    [
        87 * 512,  # a multiple of the hop
        N,
        N + 431,
    ],
)
@pytest.mark.parametrize("n_iter", [1, 4])
def test_reconstruct_with_true_magnitude_and_phase(n, n_iter):
    x = random_signal(n, seed=1)
    spec = spectrum.stft(x, CFG)
    y = synthesis.reconstruct(spec.abs(), torch.angle(spec), CFG, n, n_iter=n_iter)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-3
    snr = 10 * torch.log10((x**2).sum() / ((y - x) ** 2).sum())
    assert snr > 60


def test_reconstruct_improves_a_bad_phase():
    """Griffin-Lim iterations make the STFT of the output more consistent with the magnitudes."""
    x = random_signal(8192, seed=2)
    spec = spectrum.stft(x, CFG)
    mag = spec.abs()
    zero = torch.zeros_like(mag)

    def error(y):
        return ((spectrum.stft(y, CFG).abs() - mag).norm() / mag.norm()).item()

    e0 = error(synthesis.reconstruct(mag, zero, CFG, 8192, n_iter=0))
    e16 = error(synthesis.reconstruct(mag, zero, CFG, 8192, n_iter=16))
    assert e16 < 0.7 * e0


def test_propagate_phase_at_rate_one_reproduces_the_input_phase():
    x = random_signal(8192, seed=3)
    spec = spectrum.stft(x, CFG)
    n = spec.shape[-1]
    phase = phase_vocoder.propagate_phase(spec, torch.arange(n, dtype=torch.float32), CFG)
    assert phase.shape == spec.shape
    diff = torch.polar(torch.ones_like(phase), phase) - torch.polar(torch.ones_like(phase), torch.angle(spec))
    assert diff.abs().max() < 1e-2  # float32 phases of a few thousand radians
    assert diff.abs().mean() < 1e-3


def test_propagate_phase_stays_accurate_on_long_inputs():
    """Phases of thousands of radians accumulated in float32 drift by ~1 rad after 3 minutes; the
    accumulation must happen in float64 and be wrapped before it is returned."""
    sr, f, seconds = CFG.sample_rate, 8000.0, 120
    x = torch.sin(2 * math.pi * f * torch.arange(sr * seconds, dtype=torch.float64) / sr).float()
    spec = spectrum.stft(x, CFG)
    n = spec.shape[-1]
    phase = phase_vocoder.propagate_phase(spec, torch.arange(n, dtype=torch.float32), CFG)
    k = round(f * CFG.n_fft / sr)
    err = torch.angle(torch.polar(torch.ones(n), phase[k]) * torch.polar(torch.ones(n), -torch.angle(spec[k])))
    assert err[:-1].abs().max() < 0.05
    assert phase.abs().max() <= math.pi + 1e-5  # wrapped: float32 keeps its precision


def test_propagate_phase_continues_from_a_start_phase():
    """Streaming: a block that starts from the previous block's phase continues it exactly."""
    x = random_signal(22050, seed=4)
    spec = spectrum.stft(x, CFG)
    pos = timemap.stretch_positions(spec.shape[-1], 60, 0.7)
    whole = phase_vocoder.propagate_phase(spec, pos, CFG)
    first = phase_vocoder.propagate_phase(spec, pos[:31], CFG)
    rest = phase_vocoder.propagate_phase(spec, pos[30:], CFG, start=first[..., 30])
    unit = lambda p: torch.polar(torch.ones_like(p), p)
    assert (unit(torch.cat([first, rest[..., 1:]], -1)) - unit(whole)).abs().max() < 1e-4


def test_quiet_bins_restart_so_rounding_noise_in_silence_does_not_reach_the_music():
    """A tone after digital silence: the silent frames' phases are the FFT's rounding (here
    replaced by two different random draws, as a CPU and a GPU FFT differ). Propagated through the
    silence, the tone's bins start from that noise; with the silent bins marked quiet they restart
    from the input's phase, and both draws give the same phase wherever the tone sounds."""
    sr = CFG.sample_rate
    x = torch.zeros(sr)
    t = torch.arange(sr // 2, dtype=torch.float64) / sr
    x[sr // 2 :] = (0.5 * torch.sin(2 * math.pi * 440 * t) + 0.3 * torch.sin(2 * math.pi * 1320 * t)).float()
    spec = spectrum.stft(x, CFG)
    n = spec.shape[-1]
    pos = timemap.stretch_positions(n, int(n / 1.5), 1.5)
    mag = spec.abs()
    silent = mag < 1e-6
    draws = []
    for seed in (0, 1):
        noise = torch.rand(spec.shape, generator=torch.Generator().manual_seed(seed)) * 2 * math.pi - math.pi
        draws.append(torch.where(silent, noise, torch.angle(spec)))
    i0 = pos.floor().long()
    quiet = silent[:, i0] | silent[:, (i0 + 1).clamp_max(n - 1)]
    loud = mag[:, i0] > 1e-3 * mag.max()
    unit = lambda p: torch.polar(torch.ones_like(p), p)
    plain = [phase_vocoder.propagate_phase(d, pos, CFG) for d in draws]
    kept = [phase_vocoder.propagate_phase(d, pos, CFG, quiet=quiet) for d in draws]
    assert (unit(plain[0]) - unit(plain[1])).abs()[loud].mean() > 0.5  # the noise reached the tone
    assert (unit(kept[0]) - unit(kept[1])).abs()[loud].max() < 1e-4
    # no quiet bin, or quiet bins only where the frame resets anyway: the same as without
    none = torch.zeros_like(quiet)
    assert torch.equal(phase_vocoder.propagate_phase(draws[0], pos, CFG, quiet=none), plain[0])
    reset = torch.zeros(len(pos), dtype=torch.bool)
    reset[[5, 20]] = True
    by_frame = phase_vocoder.propagate_phase(draws[0], pos, CFG, reset=reset)
    by_bin = phase_vocoder.propagate_phase(draws[0], pos, CFG, quiet=reset[None, :].expand_as(quiet))
    assert (unit(by_frame) - unit(by_bin)).abs().max() < 1e-5


@pytest.mark.parametrize("first,stop", [(0, 5), (3, 9), (40, 44), (41, 50)])
def test_frames_equal_a_slice_of_the_whole_stft(first, stop):
    x = random_signal(22050, seed=5, lead=(2,))
    # 44 frames; frames past the end see the signal followed by zeros
    whole = spectrum.stft(torch.nn.functional.pad(x, (0, 8 * CFG.hop)), CFG)
    part = spectrum.frames(x, CFG, first, stop)
    assert part.shape == (2, CFG.n_freq, stop - first)
    torch.testing.assert_close(part, whole[..., first:stop], atol=1e-4, rtol=1e-4)


def test_overlap_add_divided_by_window_power_is_istft():
    x = random_signal(8192, seed=6)
    spec = spectrum.stft(x, CFG)
    signal, power = synthesis.overlap_add(spec, CFG)
    k = spec.shape[-1]
    assert signal.shape == ((k - 1) * CFG.hop + CFG.n_fft,) and power.shape == signal.shape
    y = (signal / power.clamp_min(1e-11))[CFG.n_fft // 2 : CFG.n_fft // 2 + 8192]
    assert (y - x).abs().max() < 1e-4


@pytest.mark.parametrize(
    "cfg", [CFG, spectrum.SpectralConfig(44100, 4096, 1024), spectrum.SpectralConfig(16000, 1000, 300)]
)
def test_projection_is_istft_then_stft(cfg):
    """One Griffin-Lim step on the frames equals torch.istft followed by torch.stft (also when the
    hop does not divide the frame, where fold does the overlap-add)."""
    g = torch.Generator().manual_seed(7)
    spec = torch.complex(torch.randn(2, cfg.n_freq, 30, generator=g), torch.randn(2, cfg.n_freq, 30, generator=g))
    length = 29 * cfg.hop + 77  # 30 frames
    expected = spectrum.stft(spectrum.istft(spec, cfg, length), cfg)
    got = synthesis.project(spec, cfg, cfg.n_fft // 2, cfg.n_fft // 2 + length)
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)


def test_phase_locking_keeps_a_partials_bins_coherent():
    """A sine between two bins, read at rate 0.5: the bins around its peak keep the input's phase
    offsets to the peak (plain propagation lets them drift apart)."""
    sr, f = CFG.sample_rate, 1011.3
    x = torch.sin(2 * math.pi * f * torch.arange(N) / sr)
    spec = spectrum.stft(x, CFG)
    n_out = CFG.n_frames(N * 2)
    pos = timemap.stretch_positions(spec.shape[-1], n_out, 0.5)
    mag = timemap.time_scale(spec.abs().T, pos).T
    phase = phase_vocoder.propagate_phase(spec, pos, CFG)
    locked = phase_vocoder.lock_phase(phase, mag, torch.angle(spec), pos)
    k = round(f * CFG.n_fft / sr)
    src = torch.angle(spec)[:, pos.round().long()]
    offset = lambda ph: phase_vocoder.wrap(ph[k + 1] - ph[k] - (src[k + 1] - src[k]))[10:-10]
    assert offset(locked).abs().max() < 1e-3
    assert offset(phase).abs().max() > 0.5
    torch.testing.assert_close(locked[k], phase[k])  # the peak keeps its propagated phase


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_propagate_phase_advances_at_the_instantaneous_frequency(rate):
    """For a stationary sine, each output frame's phase advances by 2*pi*f*hop/sr at the peak bin."""
    sr, f = CFG.sample_rate, 1000.0
    x = torch.sin(2 * math.pi * f * torch.arange(N) / sr)
    spec = spectrum.stft(x, CFG)
    n_out = CFG.n_frames(round(N / rate))
    pos = timemap.stretch_positions(spec.shape[-1], n_out, rate)
    phase = phase_vocoder.propagate_phase(spec, pos, CFG)
    assert phase.shape == (CFG.n_freq, n_out)
    k = round(f * CFG.n_fft / sr)
    step = phase[k, 10 : n_out - 10].diff()
    expected = 2 * math.pi * f * CFG.hop / sr
    wrapped = (step - expected + math.pi) % (2 * math.pi) - math.pi
    assert wrapped.abs().max() < 1e-2


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), float("-inf"), 0.1, 5, 4.01, "abc", None, [2]])
def test_check_rate_rejects(bad):
    with pytest.raises(RateError):
        timemap.check_rate(bad)


@pytest.mark.parametrize("good,expected", [(0.25, 0.25), (4, 4.0), (1, 1.0), ("2", 2.0), (1.5, 1.5)])
def test_check_rate_accepts(good, expected):
    value = timemap.check_rate(good)
    assert value == expected and isinstance(value, float)


@pytest.mark.parametrize("layout", ["stft", "row-major", "slice"])
def test_complex_helpers_match_torch(layout):
    """The real-arithmetic helpers give torch's complex results, in the input's own layout (an
    STFT's bins contiguous, a row-major tensor, a non-dense slice), zeros included."""
    spec = spectrum.stft(random_signal(lead=(2,)), CFG)  # [2, F, T], bins contiguous
    spec[0, 100:120, 3:9] = 0
    if layout == "row-major":
        spec = spec.contiguous()
    elif layout == "slice":
        spec = spec[..., 10:200, 5:40]
    mag = torch.rand(spec.shape, generator=torch.Generator().manual_seed(1))
    if layout == "stft":
        mag = mag.transpose(-1, -2).contiguous().transpose(-1, -2)
    torch.testing.assert_close(spectrum.power(spec), spec.abs() ** 2, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(spectrum.magnitude(spec), spec.abs(), rtol=1e-6, atol=1e-9)
    phase = spectrum.angle(spec)
    torch.testing.assert_close(phase, torch.angle(spec), rtol=0, atol=1e-6)
    assert phase.stride(-2) == 1 if layout != "row-major" else phase.is_contiguous()  # frames stay whole rows
    out = spectrum.polar(mag, phase)
    torch.testing.assert_close(out, torch.polar(mag, phase), rtol=1e-6, atol=1e-7)
    assert out.stride() == mag.stride() or layout == "slice"
    shaped = spectrum.with_magnitude(mag, spec)
    torch.testing.assert_close(shaped, mag * torch.sgn(spec), rtol=1e-5, atol=1e-7)
    assert bool((spec == 0).any()) and bool((shaped[spec == 0] == 0).all())
