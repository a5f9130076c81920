"""TimeMap: the output length of every way to ask for a stretch, and the source position of every
output frame (what inference reads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_stretch.dsp import timemap
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import RateError

SR = 22050
HOP = SpectralConfig().hop
RATES = [0.25, 0.3, 0.45, 0.75, 1.1, 1.25, 1.5, 1.7, 2.0, 2.3, 3.0, 3.7, 4.0]
# (N, rate) pairs whose exact quotients N / rate have fractional parts spread over [0, 1): a
# truncating or a ceiling length differs from round() on about half of them
PAIRS = [(n, r) for r in RATES for n in (*range(22050, 22059), 1, 2, 3, 7, 1001, 4097)]


def test_the_pairs_spread_their_fractional_parts_over_0_1():
    fractions = np.array([n / r % 1 for n, r in PAIRS])
    counts = np.histogram(fractions, bins=10, range=(0, 1))[0]
    assert (counts >= 5).all(), counts
    assert sum(0.5 < f < 1 for f in fractions) >= 50  # where int() and round() part


@pytest.mark.parametrize("n,rate", PAIRS)
def test_rate_gives_round_n_over_rate_samples(n, rate):
    tmap = timemap.resolve(n, SR, rate=rate)
    assert tmap.n_out == max(1, round(n / rate))
    assert tmap.n_in == n
    assert tmap.mean_rate == pytest.approx(n / tmap.n_out)


@pytest.mark.parametrize("seconds", [0.5, 0.7071, 1.0 / 3, 1.23456, 2.0])
def test_duration_gives_round_seconds_times_sr_samples(seconds):
    assert timemap.resolve(SR, SR, duration=seconds).n_out == round(seconds * SR)


@pytest.mark.parametrize("n,rate", [(22050, 0.25), (22051, 0.75), (44100 + 7, 1.5), (30000, 2.3), (22053, 4.0)])
def test_constant_rate_positions_are_j_times_the_rate(n, rate):
    """Output frame j is centred on output sample j * hop, which plays source sample j * hop * n / n_out:
    source frame j * n / n_out, clamped to the last input frame."""
    cfg = SpectralConfig()
    tmap = timemap.resolve(n, SR, rate=rate)
    n_in, n_out = cfg.n_frames(n), cfg.n_frames(tmap.n_out)
    pos = tmap.positions(n_out, HOP, n_in)
    assert pos.shape == (n_out,) and pos.dtype == torch.float32
    expected = np.clip(np.arange(n_out) * n / tmap.n_out, 0, n_in - 1)
    np.testing.assert_allclose(pos.numpy(), expected, rtol=1e-6, atol=1e-4)
    # the constant-rate helper the latent cache and the benchmark's ceilings use agrees
    torch.testing.assert_close(timemap.stretch_positions(n_in, n_out, tmap.mean_rate), pos, rtol=1e-6, atol=1e-4)


ANCHORS = [(SR, 2 * SR), (3 * SR, 3 * SR), (4 * SR, 5 * SR)]  # rate 0.5, then 2, then 0.5, then 1


def test_anchored_positions_pass_through_every_anchor():
    n = 6 * SR
    tmap = timemap.resolve(n, SR, time_map=ANCHORS)
    assert list(tmap.source) == [0, SR, 3 * SR, 4 * SR, n] and list(tmap.target) == [0, 2 * SR, 3 * SR, 5 * SR, 7 * SR]
    cfg = SpectralConfig()
    n_in, n_out = cfg.n_frames(n), cfg.n_frames(tmap.n_out)
    pos = tmap.positions(n_out, HOP, n_in).double().numpy()
    t = np.arange(n_out) * HOP  # output sample at each frame centre
    expected = np.interp(t, [0, 2 * SR, 3 * SR, 5 * SR, 7 * SR], [0, SR, 3 * SR, 4 * SR, n]) / HOP
    np.testing.assert_allclose(pos, np.minimum(expected, n_in - 1), atol=1e-3)
    # the local rates: 0.5 frames per output frame, then 2, then 0.5, then 1
    steps = np.diff(pos)
    for (lo, hi), rate in zip(
        [(0, 2 * SR), (2 * SR, 3 * SR), (3 * SR, 5 * SR), (5 * SR, 7 * SR - HOP)], [0.5, 2.0, 0.5, 1.0]
    ):
        inside = (t[1:] > lo + HOP) & (t[1:] < hi - HOP)
        np.testing.assert_allclose(steps[inside], rate, atol=1e-3)


def test_anchored_map_ends_at_the_rate_the_duration_or_rate_1():
    n = 6 * SR
    assert timemap.resolve(n, SR, time_map=ANCHORS).n_out == 5 * SR + (n - 4 * SR)  # rate 1 after the last anchor
    assert timemap.resolve(n, SR, rate=0.75, time_map=ANCHORS).n_out == round(n / 0.75)
    assert timemap.resolve(n, SR, duration=6.5, time_map=ANCHORS).n_out == round(6.5 * SR)
    with pytest.raises(RateError, match="beyond the output"):
        timemap.resolve(n, SR, rate=2.0, time_map=ANCHORS)  # 3 s of output, the last anchor is at 5 s


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_gap_ratio_bounds_the_music_between_attacks(rate):
    """Onsets every 140 ms (16ths at 107 bpm): without a bound, the attacks at speed 1 leave the
    gaps between them to absorb the whole stretch; gap_ratio keeps every gap within that factor
    of the rate, by playing fewer attacks at speed 1, and never plays a gap outside it."""
    n = 10 * SR
    onsets = np.arange(SR // 2, n - SR // 2, int(0.14 * SR))
    tmap = timemap.from_rate(n, rate)
    free, spans_free = timemap.with_transients(tmap, onsets, HOP, 3, 3)
    bound, spans_bound = timemap.with_transients(tmap, onsets, HOP, 3, 3, gap_ratio=1.5)

    def gaps(m):  # local rates of the segments not played at speed 1
        local = np.diff(m.source) / np.diff(m.target)
        return local[np.abs(local - 1) > 1e-9]

    assert np.max(np.abs(np.log(gaps(free) / rate))) > np.log(1.5)  # unbounded: some gap beyond the factor
    assert np.all(np.abs(np.log(gaps(bound) / rate)) <= np.log(1.5) + 1e-9)
    assert 0 < len(spans_bound) < len(spans_free)
    assert bound.n_out == tmap.n_out and free.n_out == tmap.n_out


def test_local_rates_follow_the_segments_of_a_map():
    tmap = timemap.from_anchors(4 * HOP * 10, [(HOP * 10, HOP * 20)], timemap.from_rate(4 * HOP * 10, 1.0))
    rates = tmap.local_rates(tmap.n_out // HOP, HOP)
    assert np.allclose(rates[:20], 0.5) and np.allclose(rates[20:], 30 / 20)


def test_frame_features_give_the_local_rate_and_the_attack_frames():
    """A refiner conditioned per frame sees how fast each output frame reads the input (log2 of
    input frames per output frame) and whether it plays an attack at speed 1: at rate 2 with
    attacks, the attack frames read at speed 1 (0) and the music between them faster than 2."""
    cfg = SpectralConfig()
    n = 8 * cfg.sample_rate
    n_in = cfg.n_frames(n)
    uniform = timemap.frame_plan(timemap.from_rate(n, 2.0), cfg, n_in)
    f = timemap.frame_features(uniform.positions, uniform.attacks)
    assert f.shape == (len(uniform.positions), timemap.FRAME_FEATURES) and f.dtype == torch.float32
    np.testing.assert_allclose(f[:-1, 0].numpy(), 1.0, atol=1e-3)  # every frame at rate 2 (the last clamped at the end)
    assert not f[:, 1].any()

    onsets = np.arange(cfg.sample_rate // 2, n - cfg.sample_rate // 2, cfg.sample_rate // 2)  # 2 attacks a second
    plan = timemap.frame_plan(timemap.from_rate(n, 2.0), cfg, n_in, onsets, span=(2, 2))
    f = timemap.frame_features(plan.positions, plan.attacks)
    attack = f[:, 1].bool()
    assert torch.equal(attack, plan.attacks) and attack.any() and (~attack).any()
    inner = attack & torch.roll(attack, 1) & torch.roll(attack, -1)  # frames inside a region, not at its edges
    np.testing.assert_allclose(f[inner, 0].numpy(), 0.0, atol=1e-6)  # speed 1
    away = ~(attack | torch.roll(attack, 1) | torch.roll(attack, -1))  # the music between, off the regions' edges
    gaps = f[away, 0][:-1]
    assert (gaps > 1.0).all() and gaps.max() < np.log2(timemap.STEP_RANGE[1])  # faster than 2 between attacks
    # a block's rows are the whole plan's: features come from the whole plan, not from a slice
    assert timemap.frame_features(plan.positions[:1], None).shape == (1, timemap.FRAME_FEATURES)
