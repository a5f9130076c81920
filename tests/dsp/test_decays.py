"""Decays keep time: between attacks, a stretched note decays as it would at the new tempo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_stretch.dsp import decays
from gan_stretch.stretching.stretcher import Stretcher

SR = 22050


def plucks(period: float, seconds: float, decay_db_per_s: float = 30.0) -> np.ndarray:
    """A plucked 330 Hz tone every ``period`` seconds, each decaying exponentially: the true
    performance of the same notes at another tempo is the same plucks at another period."""
    t = np.arange(int(seconds * SR)) / SR
    since = np.mod(t, period)
    env = 10 ** (-decay_db_per_s * since / 20)
    tone = sum(np.sin(2 * np.pi * 330 * h * t) / h for h in (1, 2, 3))
    return (0.3 * env * tone).astype(np.float32)


def level_before_attacks(y: np.ndarray, period: float, sr: int = SR) -> float:
    """Mean level in dB of the sustain 150 to 60 ms before each pluck from the third on (the first
    pluck, at 0, has no attack region to measure time from; 60 ms keeps a window's pre-echo out)."""
    starts = np.arange(2 * period, len(y) / sr - 1e-9, period)
    a, b = int(0.150 * sr), int(0.060 * sr)
    return float(np.mean([10 * np.log10(np.mean(y[int(s * sr) - a : int(s * sr) - b] ** 2)) for s in starts]))


@pytest.mark.parametrize("rate,period", [(0.5, 0.5), (2.0, 1.0)])
def test_stretched_notes_decay_in_real_time(tiny_model, rate, period):
    """The decays alone: a model whose refiner leaves the latents as they are (under residual
    decoding the output is the time-scaled input), so only the correction moves the levels."""
    x = plucks(period, 8 * period)
    truth = plucks(period / rate, 8 * period / rate)
    plain = Stretcher(tiny_model, device="cpu", transients=True, decays=False).stretch(x, SR, rate)
    timed = Stretcher(tiny_model, device="cpu", transients=True, decays=True).stretch(x, SR, rate)
    want = level_before_attacks(truth, period / rate)
    err_plain = level_before_attacks(plain, period / rate) - want
    err_timed = level_before_attacks(timed, period / rate) - want
    # slower: without the correction the note has decayed half as much before the next pluck
    # (15 dB too loud here); faster, twice as much
    assert abs(err_plain) > 6, err_plain
    assert abs(err_timed) < 3, (err_timed, err_plain)


def test_corrections_follow_the_band_slopes():
    """A band decaying 1 dB per input frame, read at half speed: after k output frames it is
    k/2 dB too loud, so the correction is -k/2 dB; a steady band gets none; attack frames none."""
    frames = 40
    mel_db = np.stack([-np.arange(frames, dtype=np.float64), np.zeros(frames)], axis=1)  # [T, 2]
    positions = torch.tensor([0.0, 1.0, 2.0] + [2.0 + 0.5 * k for k in range(1, 21)] + [12.0 + k for k in range(1, 9)])
    attacks = torch.zeros(len(positions), dtype=torch.bool)
    attacks[:3] = True
    attacks[23:] = True  # the next attack region: its onset is its 4th frame
    change = decays.corrections(mel_db, positions, attacks)
    assert np.all(change[:3] == 0)
    np.testing.assert_allclose(change[3:23, 0], -0.5 * np.arange(1, 21), atol=1e-9)
    # the region's first two frames (windows that end before its onset) keep the sustain's level
    np.testing.assert_allclose(change[23:25, 0], -10.0)
    assert np.all(change[25:] == 0)
    np.testing.assert_allclose(change[:, 1], 0, atol=1e-9)


def test_a_sustained_note_keeps_its_level_where_a_decay_decays():
    """Slowed to half speed, many gaps between attacks: a band that decays 1 dB per frame with a
    little level noise still follows its decay, while a sustained band that fluctuates about a
    steady level (a bowed note, a voice: +-1.5 dB frame to frame) keeps its level. A straight line
    fitted to such a band's short gaps and clipped to a fall lowered it by 0.36 dB on average."""
    rng = np.random.default_rng(0)
    gap, gaps = 8, 40
    frames = gap * gaps + 4
    t = np.arange(frames) % gap
    decaying = -1.0 * t + rng.normal(0, 0.2, frames)
    sustained = rng.normal(0, 1.5, frames)
    mel_db = np.stack([decaying, sustained], axis=1)
    # each gap: a 3-frame attack region at speed 1, then the gap's frames read at half speed
    positions, attacks = [], []
    for g in range(gaps):
        s = g * gap
        positions += [s, s + 1, s + 2] + [s + 2 + 0.5 * k for k in range(1, 2 * (gap - 3) + 1)]
        attacks += [True] * 3 + [False] * (2 * (gap - 3))
    change = decays.corrections(mel_db, torch.tensor(positions, dtype=torch.float64), torch.tensor(attacks))
    stretched = ~np.array(attacks)
    elapsed = np.tile(np.arange(1, 2 * (gap - 3) + 1), gaps)  # output frames since the attack region
    want = -(elapsed - elapsed / 2)  # real time minus input time read, 1 dB per frame
    assert abs(change[stretched, 0].mean() - want.mean()) < 0.3 * abs(want.mean())
    assert change[stretched, 1].mean() > -0.2
    assert change[:, 1].min() > -3.0


def test_sped_up_bands_above_the_model_read_the_level_of_real_time():
    """Bands from ``read_from`` on, where the music is sped up, take the level the input had at the
    real time since the attack: a band that decays 2 dB per frame for 10 frames and then holds
    (a decay to a sustain, which no straight line fits) read at twice the speed ends each output
    frame at the input's level k frames after the attack, not the line's; never lowered; slowed
    down, the same change as the fitted bands."""
    frames = 60
    env = np.concatenate([-2.0 * np.arange(11), np.full(frames - 11, -20.0)])
    mel_db = np.stack([env, env], axis=1)  # band 0 follows its fit, band 1 reads
    anchor = 2.0
    fast = torch.tensor([0.0, 1.0, 2.0] + [anchor + 2.0 * k for k in range(1, 21)])
    attacks = torch.zeros(len(fast), dtype=torch.bool)
    attacks[:3] = True
    change = decays.corrections(mel_db, fast, attacks, read_from=1)
    smooth = decays.smoothed(mel_db)
    got = decays.levels_at(smooth, fast[3:].numpy())[:, 1] + change[3:, 1]
    want = decays.levels_at(smooth, anchor + np.arange(1, 21))[:, 1]
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert (change[3:, 1] >= 0).all()
    # the line fitted over this gap (mostly the sustain) misses the decay's level by several dB
    fitted = decays.levels_at(smooth, fast[3:].numpy())[:, 0] + change[3:, 0]
    assert np.abs(fitted - want).max() > 5
    np.testing.assert_array_equal(change[:, 0], decays.corrections(mel_db, fast, attacks)[:, 0])

    slow = torch.tensor([0.0, 1.0, 2.0] + [anchor + 0.5 * k for k in range(1, 41)])
    attacks = torch.zeros(len(slow), dtype=torch.bool)
    attacks[:3] = True
    change = decays.corrections(mel_db, slow, attacks, read_from=1)
    np.testing.assert_allclose(change[:, 1], change[:, 0], atol=1e-9)


def hats(period: float, seconds: float, sr: int, decay_db_per_s: float = 60.0) -> np.ndarray:
    """A hi-hat every ``period`` seconds: the same noise, all above 13 kHz (a 44.1 kHz file's band
    above the model's; nothing within the model's band decays), decaying exponentially, over a
    quiet low tone."""
    n = int(round(period * sr))
    spectrum = np.fft.rfft(np.random.default_rng(0).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / sr) < 13000] = 0
    since = np.arange(int(seconds * sr)) % n  # samples since the last hit
    hit = (np.fft.irfft(spectrum, n) * 2)[since] * 10 ** (-decay_db_per_s * since / sr / 20)
    return (0.3 * hit + 0.01 * np.sin(2 * np.pi * 220 * np.arange(len(since)) / sr)).astype(np.float32)


@pytest.mark.parametrize("rate,period", [(0.5, 0.5), (2.0, 1.0)])
def test_hi_hats_above_the_model_band_decay_in_real_time(tiny_model, rate, period):
    """At 44.1 kHz the bins above the model's 11 kHz follow decays measured in bands of their own:
    a hi-hat's tail slowed down decays as at the new tempo (the bins followed the model's bands,
    where this hi-hat has no energy, and stayed about as loud as the input read slowly); sped up,
    it keeps the level it had at that time after the hit (read from the input) instead of the
    input's level twice as long after it."""
    from gan_stretch.measures import metrics

    sr = 44100
    x = hats(period, 8 * period, sr)
    truth = hats(period / rate, 8 * period / rate, sr)

    def before(y):  # the hi-hats' level before each hit, above 11 kHz
        return level_before_attacks(metrics.high_pass(y.astype(np.float64), sr, 11500.0), period / rate, sr)

    plain = Stretcher(tiny_model, device="cpu", transients=True, decays=False).stretch(x, sr, rate)
    timed = Stretcher(tiny_model, device="cpu", transients=True, decays=True).stretch(x, sr, rate)
    err_plain, err_timed = before(plain) - before(truth), before(timed) - before(truth)
    assert abs(err_plain) > 6, err_plain
    assert abs(err_timed) < 3, (err_timed, err_plain)


def test_training_with_decays_in_the_loop(tiny_corpus, tiny_model):
    """decays=true in a recipe: the cached pairs carry the Stretcher's decay change. The refiner's
    input latents are untouched, the time-scaled input frames get the change (exactly the plan the
    Stretcher makes for that input), and the target latents encode the truth without it."""
    from gan_stretch.data.cache import db_frames, latent_cache
    from gan_stretch.models.model_file import load_model

    model = load_model(tiny_model)
    plain = latent_cache(tiny_corpus, model, "tiny", transients=True, frames=True)
    timed = latent_cache(tiny_corpus, model, "tiny", transients=True, frames=True, decays=True)
    assert torch.equal(plain.source, timed.source)
    assert torch.equal(plain.target_db, timed.target_db)
    diff = (timed.source_db.float() - plain.source_db.float()).abs().amax(dim=-1)  # [frames] dB
    moved, still = diff > 1.0, diff == 0  # frames the decays change, frames they leave alone
    assert moved.any() and still.any()
    torch.testing.assert_close(plain.target[still], timed.target[still], atol=1e-2, rtol=0)
    assert ((plain.target[moved] - timed.target[moved]).abs().amax(dim=-1) > 1e-3).all()

    # the cached frames are the Stretcher's plan, exactly: the plan the Stretcher makes when it
    # stretches the item to the truth's length (its analysis pass, regions and decays, with the
    # cache's settings), applied to the same dB frames
    import gan_stretch.stretching.stretcher as stretcher_module
    from gan_stretch import Stretcher
    from gan_stretch.data.cache import to_bins
    from gan_stretch.dsp import timemap

    cfg = model.spectral
    item = tiny_corpus.split("train")[0]
    wave, truth = tiny_corpus.load(item, 1.0), tiny_corpus.load(item, 0.5)
    made = []

    def spy(*args, **kw):
        made.append(original(*args, **kw))
        return made[-1]

    original = stretcher_module.make_plan
    st = Stretcher(model, device="cpu", transients=True, decays=True, attack_span=(3, 3), dense_attacks=False)
    try:
        stretcher_module.make_plan = spy
        st.stretch(wave, cfg.sample_rate, duration=len(truth) / cfg.sample_rate)
    finally:
        stretcher_module.make_plan = original
    plan = made[0]
    assert plan.attacks is not None and plan.attacks.any() and np.abs(plan.change).max() > 3
    db = db_frames(wave, cfg)[0]
    want = (timemap.time_scale(db, plan.positions) + to_bins(plan.change, cfg)).clamp(-cfg.db_range, 0)
    first = next(i for i, r in enumerate(timed.rates) if i < len(timed.lengths) and r == 0.5)
    rows = slice(int(timed.offsets[first]), int(timed.offsets[first] + timed.lengths[first]))
    assert torch.equal(timed.source_db[rows], want[: timed.lengths[first]].half())
