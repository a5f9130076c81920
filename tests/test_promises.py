"""The README's numeric promises, end to end: pitch within 1 cent, every event where the rate or the
time map puts it, lengths of exactly round(N / rate) samples, the band cross-fade, and training
that never reads the held-out pieces.

Two models: the packaged default (what users get) and a tiny untrained one whose generator does
change the latents (random output weights), so a promise is not met only because an identity
generator hands the time-scaled input through.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gan_stretch.cli.main import main
from gan_stretch.dsp.band import Band, input_config
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.measures import metrics
from gan_stretch.stretching.stretcher import Stretcher

from conftest import active_model, music_like

SR = 22050
HOP = SpectralConfig().hop  # one hop of the model: 23 ms
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stretchers():
    """The default pipeline (one Griffin-Lim iteration, residual decoding) with each model, without
    and with attacks played at speed 1 (``transients``; the packaged default plays them by default)."""
    active = active_model()
    return {
        "default": Stretcher(device="cpu", transients=False),
        "active": Stretcher(active, device="cpu", transients=False),
        "default+transients": Stretcher(device="cpu", transients=True),
        "active+transients": Stretcher(active, device="cpu", transients=True),
    }


# --- pitch ---------------------------------------------------------------------------------------


def harmonic(f0s: list[float], seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    """Five harmonics (1/h amplitudes) on each fundamental of ``f0s``."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * h * f0 * t + h) / h for f0 in f0s for h in range(1, 6))
    return (0.3 * x / len(f0s)).astype(np.float32)


def partial_share(y: np.ndarray, f0s: list[float], sr: int = SR) -> float:
    """Share of the energy within 15 Hz of the five harmonics of ``f0s`` (edges left out)."""
    core = y[4096:-4096].astype(np.float64)
    power = np.abs(np.fft.rfft(core * np.hanning(len(core)))) ** 2
    hz = np.fft.rfftfreq(len(core), 1 / sr)
    near = np.zeros(len(hz), bool)
    for f in f0s:
        for h in range(1, 6):
            near |= np.abs(hz - h * f) < 15
    return float(power[near].sum() / power.sum())


SIGNALS = {"A3": [220.0], "E5": [659.26], "C major chord": [261.63, 329.63, 392.0]}
PITCH_RATES = [0.25, 0.5, 0.75, 1.25, 1.5, 2.0, 4.0]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["default", "active"])
@pytest.mark.parametrize("signal", list(SIGNALS))
def test_pitch_stays_within_1_cent(stretchers, model, signal):
    """The benchmark's own pitch measure at every rate from 0.25 to 4 (the README reports at most
    0.56 cents on any clip of music at the benchmark's rates; measured here: at most 0.14 cents, at rate 4)."""
    x = harmonic(SIGNALS[signal])
    shifts = {}
    for rate in PITCH_RATES:
        y = stretchers[model].stretch(x, SR, rate)
        shifts[rate] = metrics.pitch_shift_cents(y, x, SR)
        # ... and the output is these tones, not a noise whose spectrum happens to correlate
        assert partial_share(y, SIGNALS[signal]) > 0.9, rate
    assert max(abs(c) for c in shifts.values()) < 1.0, shifts


def test_pitch_measure_resolves_the_1_cent_bound():
    """The measuring stick: a 1-cent resampling reads as 1 cent (0.83: the parabolic peak
    refinement of 1-cent bins reads small shifts a little low), a 2-cent one fails the bound."""
    x = harmonic(SIGNALS["C major chord"])
    for cents, low, high in ((1.0, 0.8, 1.2), (-1.0, -1.2, -0.8), (2.0, 1.5, 2.5)):
        ratio = 2 ** (cents / 1200)
        shifted = np.interp(np.arange(0, len(x) - 1, ratio), np.arange(len(x)), x).astype(np.float32)
        assert low < metrics.pitch_shift_cents(shifted, x, SR) < high, cents


# --- time placement ------------------------------------------------------------------------------


def click_train(rate: float, phases=tuple(range(8))) -> tuple[np.ndarray, np.ndarray]:
    """Clicks at least 0.35 s apart in the output, each at another offset from the grid of 4-hop
    steps (k * 256 samples for phase k): a click midway between two frames is read differently
    from one on a frame. Over a little noise, so no stretch of it is silent."""
    step = 2048 * int(np.ceil(0.35 * SR * max(rate, 1) / 2048))
    times = np.array([step * (k + 1) + 256 * phase for k, phase in enumerate(phases)])
    x = 1e-3 * np.random.default_rng(0).standard_normal(times[-1] + step)
    x[times] += 0.9
    return x.astype(np.float32), times


def locate_clicks(y: np.ndarray, expected: np.ndarray, half: float) -> list[tuple[float, float]]:
    """(energy centroid, peak level above the background in dB) of the click expected at each of
    ``expected``, searched within ``half`` samples of it. The centroid of a phase vocoder's smeared
    click is where it belongs; its peak sample is not (smearing spreads it over several frames)."""
    energy = np.convolve(y.astype(np.float64) ** 2, np.ones(256) / 256, mode="same")
    background = np.median(energy)
    found = []
    for t in expected:
        lo, hi = max(0, int(t - half)), min(len(y), int(t + half))
        excess = np.maximum(energy[lo:hi] - background, 0)
        centroid = lo + (np.arange(hi - lo) * excess).sum() / max(excess.sum(), 1e-30)
        found.append((centroid, 10 * np.log10(energy[lo:hi].max() / background)))
    return found


def assert_clicks_land(y: np.ndarray, expected: np.ndarray, half: float) -> None:
    for k, ((where, level), t) in enumerate(zip(locate_clicks(y, expected, half), expected)):
        assert level > 6, f"click {k} (expected at sample {t:.0f}) is lost: {level:.1f} dB above the background"
        assert abs(where - t) <= HOP, f"click {k} lands at {where:.0f}, expected {t:.0f} (one hop: {HOP})"


RATE_4_LOSES_A_CLICK = pytest.mark.xfail(
    strict=True,
    reason=(
        "rate 4 reads every 4th input frame and no frame covers a click midway between two of them: "
        "measured 1-2 dB above the background (default and active model, with and without transients), "
        "the clicks a quarter step from it 11-13 dB"
    ),
)


def placement_cases():
    for transients in (False, True):
        for rate in (0.25, 0.5, 0.75, 1.25, 1.5, 2.0, 3.0, 4.0):
            # with transients each click is an attack played at speed 1: none is skipped at rate 4
            marks = [RATE_4_LOSES_A_CLICK] if rate == 4.0 and not transients else []
            yield pytest.param(rate, transients, marks=marks, id=f"{rate}{'-transients' if transients else ''}")


@pytest.mark.parametrize("model", ["default", "active"])
@pytest.mark.parametrize("rate,transients", list(placement_cases()))
def test_each_click_lands_at_t_over_rate(stretchers, model, rate, transients):
    x, times = click_train(rate)
    y = stretchers[model + "+transients" * transients].stretch(x, SR, rate)
    assert len(y) == round(len(x) / rate)
    assert_clicks_land(y, times / rate, half=(times[1] - times[0]) / rate / 2)


@pytest.mark.parametrize("model", ["default", "active"])
def test_clicks_on_the_frames_rate_4_reads_land_at_t_over_4(stretchers, model):
    x, times = click_train(4.0, phases=(0,) * 8)
    y = stretchers[model].stretch(x, SR, 4.0)
    assert_clicks_land(y, times / 4.0, half=(times[1] - times[0]) / 4.0 / 2)


@pytest.mark.parametrize("model", ["default", "active"])
@pytest.mark.parametrize("transients", [False, True])
def test_each_click_lands_at_its_time_map_target(stretchers, model, transients, tmp_path):
    """Rate 0.5 for 1 s, 2 for 2 s, 0.5 for 1 s, then 1: each click lands where the map sends its
    source sample, through the API (pairs) and through a time map file."""
    model += "+transients" * transients
    n = 6 * SR
    anchors = [(SR, 2 * SR), (3 * SR, 3 * SR), (4 * SR, 5 * SR)]
    times = (np.array([0.5, 1.4, 2.0, 2.7, 3.5, 4.5, 5.4]) * SR).astype(int) + 256 * np.arange(7)
    x = 1e-3 * np.random.default_rng(0).standard_normal(n)
    x[times] += 0.9
    x = x.astype(np.float32)
    expected = np.interp(times, [0, SR, 3 * SR, 4 * SR, n], [0, 2 * SR, 3 * SR, 5 * SR, 7 * SR])
    y = stretchers[model].stretch(x, SR, time_map=anchors)
    assert len(y) == 7 * SR
    assert_clicks_land(y, expected, half=0.2 * SR)
    path = tmp_path / "map.txt"
    path.write_text("".join(f"{s} {t}\n" for s, t in anchors))
    np.testing.assert_array_equal(stretchers[model].stretch(x, SR, time_map=path), y)


# --- lengths -------------------------------------------------------------------------------------

LENGTH_PAIRS = [
    (n, r) for r in (0.25, 0.3, 0.45, 0.75, 1.1, 1.7, 2.3, 3.7, 4.0) for n in (1001, 4097, 9999, 22051, 22053)
]


def test_stretch_gives_exactly_round_n_over_rate_samples(stretchers):
    """45 (N, rate) pairs whose N / rate have fractional parts in every tenth of [0, 1)."""
    assert {int(n / r % 1 * 10) for n, r in LENGTH_PAIRS} == set(range(10))
    s = stretchers["active"]
    for n, rate in LENGTH_PAIRS:
        x = music_like(n, seed=n)
        assert s.stretch(x, SR, rate).shape == (round(n / rate),), (n, rate)
        if n == 4097:
            assert s.stretch(np.stack([x, -x]), SR, rate).shape == (2, round(n / rate)), rate


@pytest.mark.parametrize("rate", [0.25, 4.0, 0.3, 3.7])
def test_files_get_exactly_round_n_over_rate_samples(rate, tmp_path):
    """The streamed file path and the CLI, at the ends of the rate range, 44.1 kHz stereo."""
    sr, n = 44100, 44100 + 1234
    src = tmp_path / "in.flac"
    sf.write(str(src), music_like(n, sr=sr, channels=2).T, sr)
    info = Stretcher(device="cpu", chunk_frames=64).stretch_file(src, tmp_path / "api.flac", rate)
    assert info["frames"] == round(n / rate) == sf.info(str(tmp_path / "api.flac")).frames
    assert main(["stretch", str(src), str(tmp_path / "cli.wav"), "--rate", str(rate), "--device", "cpu"]) == 0
    assert sf.info(str(tmp_path / "cli.wav")).frames == round(n / rate)


# --- the band above the model's --------------------------------------------------------------------


@pytest.mark.parametrize("sr", [44100, 48000])
def test_band_cross_fade_covers_the_models_top_10_percent(sr):
    """Model magnitudes A below 90 % of the model's Nyquist frequency (11025 Hz), the time-scaled
    input B above it, and a linear cross-fade from A to B over the top 10 %."""
    model = SpectralConfig()
    cfg = input_config(SpectralConfig(), sr)
    band = Band(model, cfg, "cpu")
    a, b = 2.0, 5.0
    low = torch.full((1, model.n_freq, 3), a)
    high = torch.full((1, cfg.n_freq - band.first_high, 3), b)
    out = band.combine(low, high)
    assert out.shape == (1, cfg.n_freq, 3)
    hz = np.arange(cfg.n_freq) * sr / cfg.n_fft
    nyquist = model.sample_rate / 2
    weight = np.clip((nyquist - hz) / (0.1 * nyquist), 0, 1)  # the model's share
    np.testing.assert_allclose(out[0, :, 0].numpy(), b + (a - b) * weight, atol=2e-3)
    fading = (hz > 0.9 * nyquist + 20) & (hz < nyquist - 20)
    assert fading.sum() > 90  # about 1100 Hz of bins 10.8 Hz apart, strictly between the two levels


# --- the benchmark's score -----------------------------------------------------------------------


def test_benchmark_score():
    """eval/benchmark.py's score(): each measure against the right signal (log-mel and duration
    against the truth, pitch against the input), milliseconds, the realtime factor, and one value
    for every column the benchmark writes. (The perception measures are pinned by their own tests;
    ViSQOL is left out here, it builds a model.)"""
    from eval import benchmark

    score = lambda out, seconds: benchmark.score(out, src, truth, SR, seconds, visqol=False)
    src = harmonic([220.0])
    truth = harmonic([220.0], seconds=4.0)  # the true stretch by 0.5 of a stationary tone
    exact = score(truth, seconds=0.5)
    assert set(exact) == set(benchmark.METRICS)
    assert exact["logmel_db"] == 0.0 and exact["duration_error_ms"] == 0.0 and exact["spectral_convergence"] == 0.0
    assert abs(exact["pitch_cents"]) < 0.1
    assert exact["realtime_factor"] == pytest.approx(2.0 / 0.5)
    short = score(truth[:-441], seconds=1.0)
    assert short["duration_error_ms"] == pytest.approx(-20.0)
    assert short["logmel_db"] == pytest.approx(metrics.log_mel_distance(truth[:-441], truth, SR))
    sharp = harmonic([220.0 * 2 ** (30 / 1200)], seconds=4.0)  # 30 cents up
    s = score(sharp, seconds=1.0)
    assert s["pitch_cents"] == pytest.approx(30.0, abs=1.0)
    assert s["logmel_db"] == pytest.approx(metrics.log_mel_distance(sharp, truth, SR))
    assert s["mrstft"] == pytest.approx(metrics.multi_resolution_stft_distance(sharp, truth))
    assert s["spectral_convergence"] == pytest.approx(metrics.spectral_convergence(sharp, truth))


# --- training never reads held-out pieces --------------------------------------------------------


def test_training_never_reads_held_out_items(tiny_corpus, tmp_path, monkeypatch):
    """Every audio read of an autoencoder and a GAN run on a fresh copy of the corpus (no caches),
    recorded: outside the held-out evaluation only training items, and the evaluation reads the
    held-out ones (so the recorder sees reads at all)."""
    from gan_stretch.data.manifest import Corpus
    from gan_stretch.train.common import Run

    from conftest import run_stage

    corpus_dir = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, corpus_dir, ignore=shutil.ignore_patterns("cache"))
    corpus = Corpus(corpus_dir)
    train_ids = {i.id for i in corpus.split("train")}
    heldout_ids = {i.id for i in corpus.split("heldout")}
    assert train_ids and heldout_ids
    reads = {"training": set(), "evaluation": set()}
    context = ["training"]
    load, evaluate = Corpus.load, Run.evaluate

    def recording_load(self, item, rate):
        reads[context[-1]].add(item.id)
        return load(self, item, rate)

    def recording_evaluate(self, *args, **kwargs):
        context.append("evaluation")
        try:
            return evaluate(self, *args, **kwargs)
        finally:
            context.pop()

    monkeypatch.setattr(Corpus, "load", recording_load)
    monkeypatch.setattr(Run, "evaluate", recording_evaluate)
    run_stage("autoencoder", corpus, tmp_path / "ae", 2, "eval_pieces=1")
    run_stage("gan", corpus, tmp_path / "gan", 2, "eval_pieces=1", ae=tmp_path / "ae" / "model.safetensors")
    assert reads["training"] == train_ids
    assert reads["evaluation"] == heldout_ids


def test_attack_frames_keep_the_input_under_residual_decoding(stretchers):
    """With transients, the frames that play an attack at speed 1 are the input's own frames: the
    refiner's change applies only to what is stretched (a model whose change is not zero)."""
    from gan_stretch.dsp import onset_detection, spectrum, timemap
    from gan_stretch.stretching.magnitudes import stretch_frames

    model = stretchers["active"].model
    cfg = model.spectral
    x, times = click_train(0.5)
    onsets = onset_detection.onsets_of(torch.from_numpy(x), cfg)
    n_in = cfg.n_frames(len(x))
    plan = timemap.frame_plan(timemap.from_rate(len(x), 0.5), cfg, n_in, onsets)
    assert plan.attacks.any() and not plan.attacks.all()
    spec = spectrum.stft(torch.from_numpy(x), cfg)
    ref = spectrum.reference_db(spec.abs())
    frames = spectrum.magnitude_to_db(spec.abs(), ref, cfg).T[None]  # [1, T, F]
    rate = torch.tensor([0.5])
    kept = stretch_frames(model, frames, plan.positions, rate, True, plan.attacks)[0]
    changed = stretch_frames(model, frames, plan.positions, rate, True)[0]
    scaled = timemap.time_scale(frames, plan.positions)[0]
    inside = plan.attacks
    torch.testing.assert_close(kept[inside], scaled[inside].clamp(-cfg.db_range, 0))
    assert (changed[inside] - scaled[inside]).abs().max() > 0.1  # the refiner does change them otherwise
    torch.testing.assert_close(kept[~inside], changed[~inside])


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_attacks_are_located_to_milliseconds_at_any_rate(sr):
    """The Stretcher's onset detection on the STFT of the input's own rate (48 kHz: a hop that 16
    does not divide) finds every click of a click train, and nothing between them, within 3 ms."""
    from gan_stretch.dsp import onset_detection, spectrum
    from gan_stretch.dsp.band import input_config

    cfg = input_config(spectrum.SpectralConfig(), sr)
    gap = int(0.4 * sr)
    times = np.array([gap * (k + 1) + 97 * k for k in range(6)])
    x = 1e-3 * np.random.default_rng(0).standard_normal(times[-1] + gap)
    x[times] += 0.9
    found = np.sort(onset_detection.onsets_of(torch.from_numpy(x.astype(np.float32)), cfg))
    found = found[found > gap // 2]  # the noise starting out of the zeros before the signal is an onset too
    assert len(found) == len(times), (found, times)
    assert np.abs(found - times).max() <= 0.003 * sr, (found, times)
