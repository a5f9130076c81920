"""Pitch shifting (Stretcher.shift, stretch(semitones=), gan-stretch shift, --pitch) and --tempo."""

from __future__ import annotations

import math

import mido
import numpy as np
import pytest
import soundfile as sf

from gan_stretch.cli import main
from gan_stretch.errors import RateError
from gan_stretch.stretching.stretcher import Stretcher

from conftest import SR, music_like


def sine(freq: float, seconds: float = 1.5, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(y: np.ndarray, sr: int = SR) -> float:
    """The strongest frequency of the middle of ``y`` (a zero-padded FFT, then a parabola)."""
    n = 16384
    mid = y[len(y) // 2 - n // 2 : len(y) // 2 + n // 2] * np.hanning(n)
    spec = np.abs(np.fft.rfft(mid, 1 << 18))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / (1 << 18)


@pytest.fixture(scope="module")
def stretcher(tiny_model):
    return Stretcher(tiny_model, device="cpu", griffin_lim=2)


@pytest.mark.parametrize("semitones", [-12, -5, 2, 7, 12])
def test_shift_keeps_the_duration_and_moves_a_sine_by_the_semitones(stretcher, semitones):
    x = sine(440.0)
    y = stretcher.shift(x, SR, semitones)
    assert y.shape == x.shape and y.dtype == np.float32
    want = 440.0 * 2 ** (semitones / 12)
    assert abs(1200 * math.log2(peak_hz(y) / want)) < 5  # cents
    assert 0.25 < np.abs(y[SR // 4 : -SR // 4]).max() < 1.0  # the level kept, no silence or blow-up


def test_shift_with_a_rate_sets_both_and_stereo_and_tensors_work(stretcher):
    import torch

    x = np.stack([sine(330.0), sine(440.0)])
    y = stretcher.stretch(x, SR, 2.0, semitones=-7)
    assert y.shape == (2, round(x.shape[-1] / 2))
    for ch, f in ((0, 330.0), (1, 440.0)):
        assert abs(1200 * math.log2(peak_hz(y[ch]) / (f * 2 ** (-7 / 12)))) < 5
    t = stretcher.shift(torch.from_numpy(x), SR, 3)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == x.shape


@pytest.mark.parametrize("bad", [25, -30, float("nan"), float("inf"), "up", True])
def test_absurd_shifts_are_refused_with_one_line(stretcher, bad):
    with pytest.raises(RateError, match="pitch must be") as e:
        stretcher.shift(sine(440.0), SR, bad)
    assert "\n" not in str(e.value)


def test_a_shift_that_needs_a_stretch_beyond_the_rates_names_both(stretcher):
    with pytest.raises(RateError, match=r"shift by 12 semitones at rate 0.3 needs a stretch by 0.15"):
        stretcher.stretch(sine(440.0), SR, 0.3, semitones=12)


def test_a_file_shifted_in_blocks_equals_the_signal_shifted_whole(tiny_model, tmp_path):
    """The resampler streams: a file read and written in blocks (small blocks here) gives what
    the whole signal gives."""
    x = music_like(3 * SR, channels=2)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), x.T, SR, subtype="FLOAT")
    s = Stretcher(tiny_model, device="cpu", griffin_lim=2, chunk_frames=16)
    info = s.stretch_file(src, dst, 1.25, semitones=-3.5)
    y, _ = sf.read(str(dst), dtype="float32", always_2d=True)
    whole = Stretcher(tiny_model, device="cpu", griffin_lim=2).stretch(x, SR, 1.25, semitones=-3.5)
    assert info["frames"] == y.shape[0] == whole.shape[-1] == round(x.shape[-1] / 1.25)
    assert np.abs(y.T - whole).max() < 1e-4


def cli(*argv, model) -> int:
    return main([*map(str, argv), "--checkpoint", str(model), "--griffin-lim", "2", "--device", "cpu"])


def test_shift_command_and_pitch_option(tmp_path, tiny_model, capsys):
    src = tmp_path / "in.wav"
    sf.write(str(src), sine(440.0), SR)
    assert cli("shift", src, tmp_path / "up.wav", "12", model=tiny_model) == 0
    up, _ = sf.read(str(tmp_path / "up.wav"), dtype="float32")
    assert len(up) == int(1.5 * SR) and abs(1200 * math.log2(peak_hz(up) / 880.0)) < 5
    assert cli("stretch", src, tmp_path / "down.wav", "--rate", "0.5", "--pitch", "-2", model=tiny_model) == 0
    down, _ = sf.read(str(tmp_path / "down.wav"), dtype="float32")
    assert len(down) == 3 * SR and abs(1200 * math.log2(peak_hz(down) / (440 * 2 ** (-2 / 12)))) < 5
    capsys.readouterr()
    assert cli("shift", src, tmp_path / "bad.wav", "48", model=tiny_model) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pitch must be a finite number of semitones in [-24, 24], got 48" in err
    assert not (tmp_path / "bad.wav").exists()


def test_tempo_is_a_rate_of_to_over_from(tmp_path, tiny_model, capsys):
    src = tmp_path / "in.wav"
    sf.write(str(src), music_like(SR), SR)
    assert cli("stretch", src, tmp_path / "tempo.wav", "--tempo", "120:96", model=tiny_model) == 0
    assert cli("stretch", src, tmp_path / "rate.wav", "--rate", "0.8", model=tiny_model) == 0
    assert (tmp_path / "tempo.wav").read_bytes() == (tmp_path / "rate.wav").read_bytes()
    capsys.readouterr()
    for tempo, message in (
        ("120", "--tempo must be FROM:TO in beats per minute such as 120:96, got '120'"),
        ("120:0", "--tempo must be two positive numbers"),
        ("100:500", "--tempo 100:500 is rate 5 (500 / 100 bpm), outside [0.25, 4.0]"),
    ):
        assert cli("stretch", src, tmp_path / "bad.wav", "--tempo", tempo, model=tiny_model) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert cli("stretch", src, tmp_path / "bad.wav", "--tempo", "120:96", "--rate", "2", model=tiny_model) == 1
    assert "not --rate and --tempo" in capsys.readouterr().err


def test_transpose_moves_pitched_notes_and_keeps_drums():
    from gan_stretch.data.render import DRUM_CHANNEL, transpose

    midi = mido.MidiFile()
    track = mido.MidiTrack()
    for channel, note in ((0, 60), (DRUM_CHANNEL, 36), (1, 120)):
        track.append(mido.Message("note_on", channel=channel, note=note, velocity=90, time=10))
        track.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=10))
    midi.tracks.append(track)
    out, dropped = transpose(midi, 12)
    notes = [(m.channel, m.note) for m in out.tracks[0] if m.type == "note_on"]
    assert notes == [(0, 72), (DRUM_CHANNEL, 36)] and dropped == 1  # 132 is beyond MIDI's notes
    assert sum(m.time for m in out.tracks[0]) == sum(m.time for m in midi.tracks[0])  # the timing kept
    bare, _ = transpose(midi, -2, drums=False)
    assert [(m.channel, m.note) for m in bare.tracks[0] if m.type == "note_on"] == [(0, 58), (1, 118)]
    assert sum(m.time for m in bare.tracks[0]) == sum(m.time for m in midi.tracks[0])
    with pytest.raises(Exception, match="whole semitones"):
        transpose(midi, 0.5)


@pytest.mark.slow
def test_the_pitch_study_rebuilds_its_set_and_transposes_the_truth(tiny_corpus, tmp_path):
    """eval/pitch.py: an item's rate-1 render rebuilt from its manifest entry is the set's file
    (so the transposed renders are the same performance), a transposed render is pitched n
    semitones away, and a run writes its table."""
    import csv

    from eval import pitch as study
    from gan_stretch.measures import metrics

    entry, item = tiny_corpus.manifest["items"][0], tiny_corpus.items[0]
    disk = tiny_corpus.load(item, 1.0)
    plain, _ = study.rebuild(tiny_corpus, entry, 0)
    gain = float(np.dot(disk, plain) / np.dot(plain, plain))
    assert np.linalg.norm(disk - gain * plain) / np.linalg.norm(disk) < 0.01
    up, _ = study.rebuild(tiny_corpus, entry, 5)
    assert abs(metrics.pitch_shift_cents(up, plain, tiny_corpus.sample_rate) - 500) < 25
    out = tmp_path / "pitch"
    code = study.main(
        ["--data", str(tiny_corpus.root), "--out", str(out), "--semitones", "5", "--pieces", "1"]
        + ["--methods", "librosa", "unshifted", "--no-visqol", "--jobs", "1"]
    )
    assert code == 0
    with open(out / "results.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert abs(float(rows["librosa"]["pitch_cents"])) < 25 and abs(float(rows["unshifted"]["pitch_cents"]) + 500) < 25
    assert float(rows["librosa"]["logmel_db"]) < float(rows["unshifted"]["logmel_db"])
    table = (out / "table.md").read_text()
    assert "### logmel_db" in table and "### pitch_cents" in table and "| librosa |" in table
