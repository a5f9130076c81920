"""The benchmark's metrics and the classical stretchers it compares against."""

from __future__ import annotations

import numpy as np
import pytest

from gan_stretch.measures import metrics
from gan_stretch.stretching import teachers

from conftest import music_like, tool_marks

SR = 22050


def tone(f0: float, seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(2 * np.pi * 2 * f0 * t)).astype(np.float32)


def test_log_mel_distance_definition():
    x = music_like(SR)
    assert metrics.log_mel_distance(x, x, SR) == 0.0
    # a uniform gain of g dB moves every bin above the floor by g dB: the distance is g
    assert metrics.log_mel_distance(x * 10 ** (3 / 20), x, SR) == pytest.approx(3.0, abs=0.05)
    # output and truth are trimmed to equal length; channels are averaged
    assert metrics.log_mel_distance(np.concatenate([x, x]), x, SR) == 0.0
    assert metrics.log_mel_distance(np.stack([x, x]), np.stack([x, x]), SR) == 0.0
    # silence against music is bounded by the 80 dB floor below the truth's maximum
    assert 0 < metrics.log_mel_distance(np.zeros_like(x), x, SR) <= 80.0


def test_spectral_measures_grow_with_the_error():
    x = music_like(SR)
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    small, large = x + 0.01 * noise, x + 0.1 * noise
    assert metrics.spectral_convergence(x, x) == 0.0
    assert 0 < metrics.spectral_convergence(small, x) < metrics.spectral_convergence(large, x)
    assert 0 < metrics.multi_resolution_stft_distance(small, x) < metrics.multi_resolution_stft_distance(large, x)


def test_duration_error():
    assert metrics.duration_error(np.zeros((2, SR + 441)), SR, SR) == pytest.approx(0.02)


@pytest.mark.parametrize("rate", [0.5, 0.75, 1.5, 2.0])
def test_pitch_shift_of_resampling_is_1200_log2_rate(rate):
    x = music_like(2 * SR, seed=1)
    y = teachers.resample(x[None], SR, rate)
    assert metrics.pitch_shift_cents(y, x, SR) == pytest.approx(1200 * np.log2(rate), abs=5)
    assert abs(metrics.pitch_shift_cents(x, x, SR)) < 1


def teacher_param(name: str):
    """Rubber Band cases carry the ``rubberband`` marker and skip, naming it, where it is missing."""
    return pytest.param(name, marks=tool_marks("rubberband")) if name.startswith("rubberband") else name


@pytest.mark.parametrize("name", [teacher_param(n) for n in teachers.TEACHERS if n != "resample"])
@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_classical_stretchers_keep_pitch_and_give_the_length(name, rate):
    x = tone(330.0)
    y = teachers.get(name)(x[None], SR, rate)
    assert y.shape == (1, round(len(x) / rate))
    assert abs(metrics.pitch_shift_cents(y, x[None], SR)) < 10
    raw = teachers.get(name, exact_length=False)(x[None], SR, rate)
    assert abs(raw.shape[-1] - len(x) / rate) < 0.05 * len(x) / rate  # their own length, near the target


def test_unknown_teacher():
    from gan_stretch import GanStretchError

    with pytest.raises(GanStretchError, match="unknown teacher"):
        teachers.get("magic")


def test_teacher_corpus_from_a_true_tempo_corpus(tiny_corpus, tmp_path):
    from gan_stretch.data.teacher_corpora import teacher_from_corpus

    t = teacher_from_corpus(tiny_corpus.root, tmp_path / "pv", "wsola")
    assert t.kind == "teacher" and len(t.items) == len(tiny_corpus.split("train"))
    item, src = t.items[0], tiny_corpus.split("train")[0]
    np.testing.assert_allclose(t.load(item, 1.0), tiny_corpus.load(src, 1.0), atol=1e-4)  # same input
    assert len(t.load(item, 2.0)) == round(len(t.load(item, 1.0)) / 2)


def test_teacher_corpus_from_recordings(tmp_path):
    import soundfile as sf

    from gan_stretch.data.teacher_corpora import build_teacher

    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "a.flac", music_like(3 * 44100, sr=44100, channels=2).T, 44100)
    sf.write(tmp_path / "music" / "b.ogg", music_like(2 * 44100, sr=44100, seed=2), 44100)
    c = build_teacher(
        tmp_path / "music", tmp_path / "corpus", teacher="pv", rates=(0.5, 2.0), seconds=1.0, excerpts=2, heldout=0.0
    )
    assert {i.source for i in c.items} == {
        f"file:{tmp_path / 'music' / 'a.flac'}",
        f"file:{tmp_path / 'music' / 'b.ogg'}",
    }
    assert len(c.items) == 4
    for item in c.items:
        assert len(c.load(item, 1.0)) == 22050 and len(c.load(item, 0.5)) == 44100
