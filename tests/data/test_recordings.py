"""The recorded-music family (gan_stretch.data.recordings) and the measures without truth
(gan_stretch.measures.naturalness)."""

import json

import numpy as np
import pytest
import soundfile as sf

from gan_stretch.cli.main import main as cli_main
from gan_stretch.data.manifest import Corpus
from gan_stretch.data.recordings import SOURCES, build_recordings, excerpt_starts, heldout_recordings
from gan_stretch.errors import GanStretchError
from gan_stretch.measures import naturalness as nat

from conftest import tone_music


def test_built_corpus_splits_by_recording_and_keeps_channels_and_rate(fake_root, tmp_path):
    corpus = build_recordings(tmp_path / "rec", seconds=2.0, excerpts=2, heldout=0.4, root=fake_root)
    manifest = json.loads((tmp_path / "rec/manifest.json").read_text())
    assert manifest["kind"] == "recordings"
    items = corpus.items
    assert {it.extra["package"] for it in items} == {s.package for s in SOURCES}
    assert not any("effect" in it.id for it in items)  # an 11.025 kHz file is left out
    split_of: dict[str, set] = {}
    for it in items:
        split_of.setdefault(it.extra["recording"], set()).add(it.split)
        assert {"file", "offset", "licence", "style"} <= set(it.extra)
    assert all(len(s) == 1 for s in split_of.values())  # a recording is never on both sides
    for pkg in {it.extra["package"] for it in items}:  # every package has both splits
        assert {it.split for it in items if it.extra["package"] == pkg} == {"train", "heldout"}
    stereo = next(it for it in items if it.extra["package"] == "wesnoth-1.16-music")
    x = corpus.load(stereo, 1.0, mono=False)
    assert x.shape == (2, 2 * 22050)
    assert sf.info(str(corpus.root / stereo.audio["1.000"])).subtype == "PCM_24"
    mono = next(it for it in items if it.extra["package"] == "nexuiz-music")
    assert corpus.load(mono, 1.0, mono=False).shape[0] == 1
    # the same split on a second build (a stable hash, not the order files are found in)
    again = build_recordings(tmp_path / "rec2", seconds=2.0, excerpts=2, heldout=0.4, root=fake_root)
    assert {(it.id, it.split) for it in again.items} == {(it.id, it.split) for it in items}


def test_stems_are_summed_into_the_recording(fake_root, tmp_path):
    corpus = build_recordings(tmp_path / "rec", seconds=2.0, excerpts=1, root=fake_root)
    it = next(i for i in corpus.items if i.extra["package"] == "fretsonfire-songs-sectoid")
    song = fake_root / "usr/share/games/fretsonfire/data/songs/sectoid" / it.extra["file"]
    total = sum(sf.read(song / f, always_2d=True)[0] for f in ("song.ogg", "guitar.ogg"))
    start = int(round(it.extra["offset"] * 22050))
    got = corpus.load(it, 1.0, mono=False).T
    np.testing.assert_allclose(got, total[start : start + len(got)], atol=1e-3)


def test_missing_packages_are_named_with_the_install_line(tmp_path):
    with pytest.raises(GanStretchError, match="apt-get install wesnoth-1.16-music"):
        build_recordings(tmp_path / "rec", root=tmp_path)
    assert not (tmp_path / "rec/manifest.json").exists()


@pytest.mark.parametrize(
    "kw, what", [({"seconds": 0}, "--seconds"), ({"excerpts": 0}, "--excerpts"), ({"heldout": 1.5}, "--heldout")]
)
def test_bad_options_are_refused_up_front(fake_root, tmp_path, kw, what):
    with pytest.raises(GanStretchError, match=what):
        build_recordings(tmp_path / "rec", root=fake_root, **kw)


def test_cli_builds_the_corpus(fake_root, tmp_path, monkeypatch):
    import gan_stretch.data.recordings as rec

    real = rec.build_recordings
    monkeypatch.setattr(rec, "build_recordings", lambda out, **kw: real(out, root=fake_root, **kw))
    cli_main(["data", "recordings", "--out", str(tmp_path / "cli"), "--seconds", "2", "--excerpts", "1"])
    assert len(Corpus(tmp_path / "cli").split("heldout")) >= 4


def test_heldout_share_is_stable_and_leaves_training_recordings():
    names = [f"song{i}" for i in range(10)]
    held = heldout_recordings(names, 0.4)
    assert len(held) == 4 and held == heldout_recordings(list(reversed(names)), 0.4)
    assert len(heldout_recordings(["a", "b"], 0.9)) == 1  # one is left for training
    assert heldout_recordings(names, 0.0) == set()


def test_excerpts_skip_silence():
    sr = 1000
    wave = np.zeros((1, 200 * sr), np.float32)
    wave[:, 100 * sr :] = 0.1
    starts = excerpt_starts(wave, sr, 10.0, 3)
    assert starts
    for s in starts:  # each excerpt is mostly music, not the silent first half
        assert np.sqrt(np.mean(wave[:, s : s + 10 * sr] ** 2)) > 0.05
    assert excerpt_starts(wave[:, : 5 * sr], sr, 10.0, 3) == []  # shorter than one excerpt


def test_band_levels_and_round_trip():
    sr = 22050
    x = tone_music(2, sr, 1)
    assert np.allclose(nat.band_level_change_db(x, x, sr)[:4], 0, atol=1e-6)
    quieter = nat.band_level_change_db(x * 0.5, x, sr)
    assert np.allclose([v for v in quieter if np.isfinite(v)], -6.02, atol=0.01)
    assert np.isnan(nat.band_level_change_db(x, x, sr)[-1])  # 11-22.05 kHz is above 11.025 kHz
    noise = np.random.default_rng(0).standard_normal((2, sr)).astype(np.float32)
    assert nat.round_trip_db(noise, noise, sr) == pytest.approx(0, abs=1e-6)
    assert nat.round_trip_db(noise, noise * 0.5, sr) == pytest.approx(6.02, abs=0.05)  # every mel bin 6 dB down


def _clips(seed: int, n: int, kind: str) -> list[nat.Clip]:
    sr = 22050
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n):
        t = np.arange(sr * 2) / sr
        env = np.exp(-((t % 0.25) / (0.05 if kind == "sharp" else 0.2)))
        x = env * np.sin(2 * np.pi * rng.uniform(200, 600) * t) + 0.01 * rng.standard_normal(len(t))
        out.append(nat.Clip(f"rec{g}", *nat.patches(x.astype(np.float32), sr)))
    return out


def test_two_sample_test_tells_different_music_apart_and_not_the_same():
    real = _clips(0, 8, "sharp")
    same = nat.two_sample_test(real, _clips(1, 8, "sharp"), folds=2, seed=0, steps=60, batch=64)
    other = nat.two_sample_test(real, _clips(1, 8, "smooth"), folds=2, seed=0, steps=60, batch=64)
    assert other["accuracy"] > 0.8
    assert abs(same["accuracy"] - 0.5) < 0.15
    assert other["ci"][0] > same["ci"][1]
    assert set(other["per_group"]) == {f"rec{g}" for g in range(8)}
    again = nat.two_sample_test(real, _clips(1, 8, "smooth"), folds=2, seed=0, steps=60, batch=64)
    assert again["per_group"] == other["per_group"]  # deterministic for a seed


def test_two_sample_test_needs_enough_recordings():
    with pytest.raises(ValueError, match="at least 4 recordings"):
        nat.two_sample_test(_clips(0, 2, "sharp"), _clips(1, 1, "sharp"), folds=4)


def test_paired_difference_and_bootstrap():
    a = {f"g{i}": 0.8 + 0.01 * i for i in range(10)}
    b = {f"g{i}": 0.6 + 0.01 * i for i in range(10)}
    d = nat.paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.2) and d["ci"][0] == pytest.approx(0.2) and d["groups"] == 10
    lo, hi = nat.bootstrap_ci([0.4, 0.5, 0.6, 0.5])
    assert 0.4 <= lo < 0.5 < hi <= 0.6
