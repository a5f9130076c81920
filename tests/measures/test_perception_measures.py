"""The perception measures at note onsets (metrics.attack_db, metrics.smear_db), full band and
above the model's band (hi-hats of a 44.1 kHz file)."""

from __future__ import annotations

import numpy as np
import pytest

from gan_stretch.measures import metrics

SR = 44100
HITS = np.array([0.5, 1.0, 1.5])  # seconds


def _burst(kind: str, rng: np.random.Generator) -> np.ndarray:
    """60 ms decaying burst: a 100 Hz thump, or a hi-hat (noise above 12 kHz)."""
    t = np.arange(int(0.06 * SR)) / SR
    if kind == "thump":
        return 0.6 * np.sin(2 * np.pi * 100 * t) * np.exp(-t / 0.02)
    return 0.3 * metrics.high_pass(rng.standard_normal(len(t)), SR, 12000.0) * np.exp(-t / 0.01)


def _groove(pre_echo: str | None = None, echo_db: float = -6.0) -> np.ndarray:
    """Thump and hi-hat together at each hit; ``pre_echo``: that burst also 25 ms early at ``echo_db``."""
    rng = np.random.default_rng(0)
    x = np.zeros(2 * SR)
    for t in HITS:
        k = int(t * SR)
        for kind in ("thump", "hat"):
            b = _burst(kind, np.random.default_rng(int(t * 10)))
            x[k : k + len(b)] += b
            if kind == pre_echo:
                e = k - int(0.025 * SR)
                x[e : e + len(b)] += b * 10 ** (echo_db / 20)
    return (x + 1e-4 * rng.standard_normal(len(x))).astype(np.float32)


@pytest.mark.parametrize("fmin", [0.0, metrics.HIGH_BAND_HZ])
def test_the_truth_against_itself_scores_zero(fmin):
    x = _groove()
    assert metrics.attack_db(x, x, SR, HITS, fmin) == pytest.approx(0.0, abs=1e-9)
    assert metrics.smear_db(x, x, SR, HITS, fmin) == pytest.approx(0.0, abs=1e-9)


def test_a_hi_hat_pre_echo_shows_above_the_model_band_and_a_thump_pre_echo_does_not():
    truth = _groove()
    hat, thump = _groove("hat"), _groove("thump")
    high = metrics.HIGH_BAND_HZ
    assert metrics.smear_db(hat, truth, SR, HITS, high) > 3.0
    assert abs(metrics.smear_db(thump, truth, SR, HITS, high)) < 0.5  # the thump is below 11 kHz
    assert metrics.smear_db(thump, truth, SR, HITS) > 3.0  # the full band sees it
    # the more pre-echo, the more smear
    assert metrics.smear_db(_groove("hat", -12.0), truth, SR, HITS, high) < metrics.smear_db(hat, truth, SR, HITS, high)


def test_weaker_hi_hat_attacks_score_negative_above_the_model_band():
    truth = _groove()
    rng = np.random.default_rng(1)
    # the hi-hats' first 10 ms faded in: the same bursts, softer attacks
    soft = truth.copy()
    ramp = np.minimum(1.0, np.arange(int(0.03 * SR)) / (0.03 * SR))
    hats = metrics.high_pass(soft.astype(np.float64), SR, metrics.HIGH_BAND_HZ)
    for t in HITS:
        k = int(t * SR)
        soft[k : k + len(ramp)] -= (hats[k : k + len(ramp)] * (1 - ramp)).astype(np.float32)
    soft += 1e-5 * rng.standard_normal(len(soft)).astype(np.float32)
    assert metrics.attack_db(soft, truth, SR, HITS, metrics.HIGH_BAND_HZ) < -1.0
    assert metrics.attack_db(soft, truth, SR, HITS, metrics.HIGH_BAND_HZ) < metrics.attack_db(soft, truth, SR, HITS)


def test_no_onsets_give_nan():
    x = _groove()
    assert np.isnan(metrics.attack_db(x, x, SR, [], metrics.HIGH_BAND_HZ))
    assert np.isnan(metrics.smear_db(x, x, SR, [], metrics.HIGH_BAND_HZ))
