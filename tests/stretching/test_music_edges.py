"""What musicians hit with the packaged default: 16th notes sped up, beats on time-map anchors,
time maps as Rubber Band reads them, rates near 1 and DC offsets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval.dense import hit_levels, pattern
from gan_stretch import Stretcher
from gan_stretch.dsp import timemap
from gan_stretch.errors import RateError

from conftest import requires

SR = 22050
HOP = 512


@pytest.fixture(scope="module")
def default():
    return Stretcher(device="cpu")


@pytest.fixture(scope="module")
def plain():
    """The default model without attacks at speed 1 or decays: the model and phase alone."""
    return Stretcher(device="cpu", transients=False, decays=False)


# --- dense attacks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [22050, 44100])
@pytest.mark.parametrize("rate", [1.25, 1.5, 2.0])
def test_every_16th_note_hit_keeps_its_level(default, rate, sr):
    """16th-note hi-hats at 120 bpm: attacks 5.4 hops apart, closer than the 2:2 span once sped up;
    every hit comes out within 3 dB of its input peak, at 22.05 and 44.1 kHz (at rate 3, with 1.8 hops between onsets,
    the 4-hop frames cannot: docs/results/dense/)."""
    x, onsets = pattern("hats16-120", sr)
    levels = hit_levels(default.stretch(x, sr, rate), x, onsets, rate, sr, HOP * sr // SR)
    assert levels.min() > -3, np.round(levels, 1)


def test_dense_attacks_can_be_turned_off(default):
    """dense_attacks=False keeps only full-span regions: sped up twice, most hits of the same
    pattern lose more than 3 dB (what the option changes)."""
    x, onsets = pattern("hats16-120", SR)
    off = Stretcher(default.model, device="cpu", dense_attacks=False)
    levels = hit_levels(off.stretch(x, SR, 2.0), x, onsets, 2.0, SR, HOP)
    assert (levels < -3).sum() >= len(levels) // 3


def test_the_cli_turns_dense_attacks_off(tmp_path):
    """``gan-stretch stretch --no-dense-attacks`` is dense_attacks=False: the hits it loses at rate 2
    are kept without it."""
    from gan_stretch.cli import main

    x, onsets = pattern("hats16-120", SR)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    worst = {}
    for name, extra in (("dense", []), ("off", ["--no-dense-attacks"])):
        main(
            [
                "stretch",
                str(tmp_path / "in.wav"),
                str(tmp_path / f"{name}.wav"),
                "--rate",
                "2",
                "--device",
                "cpu",
                *extra,
            ]
        )
        y = sf.read(tmp_path / f"{name}.wav", dtype="float32")[0]
        worst[name] = hit_levels(y, x, onsets, 2.0, SR, HOP).min()
    assert worst["dense"] > -3 > worst["off"]


# --- time maps -------------------------------------------------------------------------------------


def click_on_bed(n: int, at: list[int], seed: int = 1) -> np.ndarray:
    x = 0.01 * np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    x[at] = 0.9
    return x


@pytest.mark.parametrize("rate", [0.8, 1.25, 2.0])
@pytest.mark.parametrize("seconds", [0.5, 1.2345, 2.75])
def test_a_click_on_an_anchor_keeps_its_attack(default, rate, seconds):
    """A click exactly on an anchor (the beat a time map pins) is played as an attack: its peak
    stays above half the input's and it lands within half a hop of the anchor's target."""
    k = int(seconds * SR)
    target = int(round(k / rate))
    y = default.stretch(click_on_bed(int(3.5 * SR), [k]), SR, rate, time_map=[(k, target)])
    near = np.abs(y[target - HOP : target + HOP])
    assert near.max() > 0.45
    assert abs(int(near.argmax()) - HOP) <= HOP // 2


def rubberband(engine: str, x: np.ndarray, lines: str, seconds: float, tmp: Path) -> np.ndarray:
    sf.write(tmp / "in.wav", x, SR)
    (tmp / "map.txt").write_text(lines)
    subprocess.run(
        ["rubberband", engine, "-q", "--timemap", str(tmp / "map.txt"), "-D", repr(seconds), str(tmp / "in.wav")]
        + [str(tmp / "out.wav")],
        check=True,
        capture_output=True,
    )
    return sf.read(tmp / "out.wav", dtype="float32")[0]


@requires("rubberband")
@pytest.mark.parametrize(
    "name,lines,n_out",
    [
        ("end anchor at the input's length", "33075 30000\n66150 100000\n", 100000),
        ("exact duplicate line", "22050 30000\n22050 30000\n44100 60000\n", 88200),
        ("(0, 0)-relative start", "1000 0\n22050 44100\n", 88200),
    ],
)
def test_maps_rubber_band_accepts_are_accepted(default, name, lines, n_out, tmp_path):
    """The same map file as Rubber Band (R2 and R3) reads it: the same output length, and the clicks
    at 0.5 s and 1.5 s land where the map puts them, ours within a hop and Rubber Band's within
    three (R3 put one 2.7 hops late), so both read the map alike."""
    clicks = [SR // 2, 3 * SR // 2]
    x = click_on_bed(3 * SR, clicks)
    (tmp_path / "map.txt").write_text(lines)
    ours = default.stretch(x, SR, duration=n_out / SR, time_map=tmp_path / "map.txt")
    assert len(ours) == n_out
    if name == "end anchor at the input's length":  # the map alone sets the length
        assert len(default.stretch(x, SR, time_map=tmp_path / "map.txt")) == n_out
    tmap = timemap.resolve(len(x), SR, duration=n_out / SR, time_map=tmp_path / "map.txt")
    for engine in ("-2", "-3"):
        theirs = rubberband(engine, x, lines, n_out / SR, tmp_path)
        assert len(theirs) == n_out
        for c in clicks:
            where = int(np.interp(c, tmap.source, tmap.target))  # where the map puts the click
            lo = max(0, where - 4 * HOP)
            mine = lo + int(np.argmax(np.abs(ours[lo : where + 4 * HOP])))
            rb = lo + int(np.argmax(np.abs(theirs[lo : where + 4 * HOP])))
            assert abs(mine - where) <= HOP, (c, mine, where)
            assert abs(rb - where) <= 3 * HOP, (engine, c, rb, where)  # Rubber Band reads the map alike
            assert np.abs(ours[mine]) > 0.45  # and the click keeps its attack


@pytest.mark.parametrize(
    "lines",
    ["22050 30000\n11025 40000\n", "22050 30000\n30000 20000\n"],
)
def test_maps_that_go_back_are_refused(default, lines, tmp_path):
    (tmp_path / "map.txt").write_text(lines)
    with pytest.raises(RateError, match="not monotonic"):
        default.stretch(click_on_bed(3 * SR, [SR]), SR, time_map=tmp_path / "map.txt")


def test_an_end_anchor_that_disagrees_with_the_rate_is_refused(default):
    with pytest.raises(RateError, match="give one of them"):
        default.stretch(click_on_bed(3 * SR, [SR]), SR, 1.0, time_map=[(3 * SR, 4 * SR)])


# --- rates near 1 ----------------------------------------------------------------------------------


def noise(seconds: float = 4.0) -> np.ndarray:
    return (0.2 * np.random.default_rng(0).standard_normal(int(seconds * SR))).astype(np.float32)


def decaying_notes(seconds: float = 4.0) -> np.ndarray:
    """A harmonic note every 0.5 s, decaying over 0.15 s, three velocities."""
    t = np.arange(SR // 2) / SR
    note = sum(np.sin(2 * np.pi * f * t) / h for h, f in enumerate((220, 440, 660, 880), 1)) * np.exp(-t / 0.15)
    x = np.zeros(int(seconds * SR), np.float32)
    for k, o in enumerate(range(0, len(x) - len(t), SR // 2)):
        x[o : o + len(t)] += (0.2 * note * (1 + 0.2 * (k % 3))).astype(np.float32)
    return x


def level_db(v: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.asarray(v, np.float64) ** 2))


@pytest.mark.parametrize("rate", [0.97, 0.99, 0.999, 1.001, 1.01, 1.03])
def test_rates_near_1_keep_the_level(plain, default, rate):
    """Steady noise and decaying notes keep their level within 0.1 dB at rates 0.97 to 1.03 through
    the model and phase alone; with attacks and decays (the default), steady noise too."""
    for x in (noise(), decaying_notes()):
        assert abs(level_db(plain.stretch(x, SR, rate)) - level_db(x)) < 0.1
    x = noise()
    assert abs(level_db(default.stretch(x, SR, rate)) - level_db(x)) < 0.1


@pytest.mark.parametrize("which", ["plain", "default"])
def test_output_tends_to_the_input_as_the_rate_tends_to_1(plain, default, which):
    """The further the rate from 1, the further the output from the input, on both sides; at
    1 +- 1e-4 (one repeated or skipped frame in 10 000) the output is the input within -40 dB,
    with attacks and decays too."""
    stretcher = plain if which == "plain" else default
    x = decaying_notes(3.0)

    def error_db(rate):
        y = stretcher.stretch(x, SR, rate)
        m = min(len(x), len(y))
        return level_db(y[:m] - x[:m]) - level_db(x)

    near = {r: error_db(r) for r in (0.9999, 1.0001)}
    assert near[0.9999] < -40 and near[1.0001] < -40
    assert error_db(0.99) > near[0.9999] + 20 and error_db(1.01) > near[1.0001] + 20


# --- DC --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0.5, 0.3, -0.2])
def test_a_constant_stays_constant(default, offset):
    """A DC offset is taken out before the STFT and added back: a constant stretched at rate 0.5
    is that constant from the first sample to the last (no ramp at the start, no swing at the end)."""
    y = default.stretch(np.full(SR, offset, np.float32), SR, 0.5)
    assert len(y) == 2 * SR
    assert np.abs(y - offset).max() < 1e-6


def test_music_on_an_offset_keeps_it_at_both_ends(default, tmp_path):
    """Music riding on a 0.3 offset: the output's first and last 50 ms average the offset, from an
    array and from a file alike."""
    x = (0.3 + decaying_notes(2.0)).astype(np.float32)
    y = default.stretch(x, SR, 0.5)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    default.stretch_file(tmp_path / "in.wav", tmp_path / "out.wav", 0.5)
    z = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    np.testing.assert_allclose(z, y, atol=1e-4)
    edge = int(0.05 * SR)
    for part in (y[:edge], y[-edge:]):
        assert abs(part.mean() - 0.3) < 0.03
