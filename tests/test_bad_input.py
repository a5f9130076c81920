"""What a new user hits: file permissions, truncated files of every container, folder batches,
broken checkpoints, signals, bad options and recipes, output formats, API edge cases, corpora
built through a symlinked music21, and overwriting. Each test pins one behaviour users rely on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gan_stretch import AudioError, CheckpointError, ConfigError, GanStretchError, RateError, Stretcher
from gan_stretch.cli.main import main

from conftest import music_like, start_stretch, wait_until

ROOT = Path(__file__).resolve().parents[1]
SR = 22050


def write(path: Path, wave: np.ndarray, sr: int = SR, **kw) -> Path:
    sf.write(str(path), wave.T if wave.ndim == 2 else wave, sr, **kw)
    return path


def stretch(*argv, checkpoint) -> int:
    return main(["stretch", *map(str, argv), "--checkpoint", str(checkpoint), "--device", "cpu"])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- 1. permissions --------------------------------------------------------------------------------


def test_new_files_follow_the_umask_and_overwritten_files_keep_their_mode(tmp_path, tiny_model):
    from gan_stretch.io import checkpoint

    src = write(tmp_path / "in.wav", music_like(SR))
    old = os.umask(0o027)
    try:
        assert stretch(src, tmp_path / "new.wav", "--rate", "2", checkpoint=tiny_model) == 0
        checkpoint.save(tmp_path / "c.safetensors", {"w": torch.zeros(2)}, {"kind": "x"})
    finally:
        os.umask(old)
    assert (tmp_path / "new.wav").stat().st_mode & 0o777 == 0o640  # 0666 & ~027, as open() gives
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == 0o640
    existing = tmp_path / "shared.wav"
    existing.write_text("x")
    existing.chmod(0o664)
    assert stretch(src, existing, "--rate", "2", checkpoint=tiny_model) == 0
    assert existing.stat().st_mode & 0o777 == 0o664 and sf.info(str(existing)).frames == SR // 2


# --- 2. truncated files of every container libsndfile reads ---------------------------------------


@pytest.mark.parametrize(
    "ext,fmt,subtype,sr",
    [
        ("wav", "WAV", None, SR),
        ("aiff", "AIFF", None, SR),
        ("aifc", "AIFF", "FLOAT", SR),
        ("w64", "W64", None, SR),
        ("rf64", "RF64", None, SR),
        ("caf", "CAF", None, SR),
        ("au", "AU", None, SR),
        ("ogg", "OGG", None, SR),
        ("opus", "OGG", "OPUS", 48000),
    ],
)
def test_truncated_files_are_refused_naming_the_file(tmp_path, ext, fmt, subtype, sr):
    from gan_stretch.io.audio import AudioReader

    whole = write(tmp_path / f"whole.{ext}", music_like(3 * sr, sr=sr), sr, format=fmt, subtype=subtype)
    with AudioReader(whole) as reader:  # a whole file reads
        assert reader.read(0, reader.frames).shape[-1] == reader.frames
    data = whole.read_bytes()
    for cut in (len(data) // 2, len(data) - 1):
        part = tmp_path / f"cut.{ext}"
        part.write_bytes(data[:cut])
        with pytest.raises(AudioError, match="truncated") as e:
            with AudioReader(part) as reader:
                reader.read(0, reader.frames)
        assert str(part) in str(e.value)


def test_truncated_ogg_fails_in_the_cli_and_writes_nothing(tmp_path, tiny_model, capsys):
    whole = write(tmp_path / "a.ogg", music_like(3 * SR), format="OGG")
    cut = tmp_path / "t.ogg"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    assert stretch(cut, tmp_path / "o.ogg", "--rate", "2", checkpoint=tiny_model) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "truncated" in line and "t.ogg" in line
    assert files(tmp_path) == ["a.ogg", "t.ogg"]


# --- 3. folder mode -----------------------------------------------------------------------------------


def test_folder_mode_skips_hidden_files_reports_bad_ones_and_finishes(tmp_path, tiny_model, capsys):
    src = tmp_path / "album"
    (src / "sub").mkdir(parents=True)
    write(src / "a.wav", music_like(SR))
    write(src / "sub" / "b.flac", music_like(SR, channels=2))
    write(src / "c.aif", music_like(SR), format="AIFF")
    write(src / "d.opus", music_like(48000, sr=48000), 48000, format="OGG", subtype="OPUS")
    write(src / "e.wav", np.zeros(SR, np.float32))  # silent: fails, the rest go on
    (src / "._a.wav").write_bytes(b"\x00\x05\x16\x07" + os.urandom(200))  # a macOS resource fork
    write(src / ".a.partial-123-xyz.wav", music_like(SR))  # an interrupted write's leftover
    (src / "notes.txt").write_text("liner notes")
    dst = src / "slow"  # the output folder inside the input folder
    assert stretch(src, dst, "--rate", "0.5", checkpoint=tiny_model) == 1
    out, err = capsys.readouterr()
    assert files(dst) == ["a.wav", "c.aif", "d.opus", "sub/b.flac"]
    assert sf.info(str(dst / "c.aif")).format == "AIFF" and sf.info(str(dst / "d.opus")).subtype == "OPUS"
    assert one_error_line(err) == f"gan-stretch: error: audio file {src / 'e.wav'} is silent (every sample is zero)"
    assert "4 stretched" in out and "1 failed: e.wav" in out
    assert "skipped 1 file(s)" in out and "notes.txt" in out
    # a second run never reads the first run's outputs as input
    assert stretch(src, dst, "--rate", "0.5", checkpoint=tiny_model) == 1
    assert files(dst) == ["a.wav", "c.aif", "d.opus", "sub/b.flac"]


# --- 4. stereo image, 5. level and transparency (the packaged model) -----------------------------

RATES = (0.25, 0.5, 0.75, 1.5, 2.0, 4.0)


def rms_db(y: np.ndarray, trim: int = 4096) -> np.ndarray:
    return 10 * np.log10(np.mean(np.square(y[..., trim:-trim]), axis=-1))


@pytest.fixture(scope="module")
def packaged():
    return Stretcher(None, device="cpu")


def test_level_difference_between_channels_is_kept(packaged):
    mono = music_like(3 * SR, seed=1)
    stereo = np.stack([mono, mono * 10 ** (-12 / 20)])  # a source panned to -12 dB
    for rate in RATES:
        left, right = rms_db(packaged.stretch(stereo, SR, rate))
        assert abs((left - right) - 12) < 0.2, (rate, left - right)


@pytest.mark.parametrize("freq", [110.0, 440.0, 2000.0])
def test_steady_tones_keep_their_level_at_every_rate(packaged, freq):
    tone = (0.5 * np.sin(2 * np.pi * freq * np.arange(3 * SR) / SR)).astype(np.float32)
    for rate in RATES:
        change = rms_db(packaged.stretch(tone, SR, rate)) - rms_db(tone)
        assert abs(change) < 0.5, (rate, change)


def test_rate_one_and_identity_time_maps_are_transparent(packaged, tiny_model, tmp_path):
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)).astype(np.float32)
    music = music_like(2 * SR, channels=2)
    snr = lambda x, y: 10 * np.log10(np.sum(x**2) / max(np.sum((x - y) ** 2), 1e-30))
    for x in (tone, music):
        assert snr(x, packaged.stretch(x, SR, 1.0)) > 40
        assert snr(x, packaged.stretch(x, SR, time_map=[(1000, 1000), (SR, SR)])) > 40
        assert snr(x, packaged.stretch(x, SR, duration=x.shape[-1] / SR)) > 40
    src = write(tmp_path / "in.wav", music, subtype="FLOAT")
    Stretcher(tiny_model, device="cpu").stretch_file(src, tmp_path / "out.wav", 1.0)
    assert snr(music, sf.read(str(tmp_path / "out.wav"), dtype="float32")[0].T) > 40
    with pytest.raises(AudioError, match="silent"):
        packaged.stretch(np.zeros((2, SR), np.float32) + np.float32(1e-12), SR, 1.0)


def test_clipping_in_integer_formats_is_reported(tmp_path, tiny_model, capsys):
    tone = np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR).astype(np.float32)  # full scale
    src = write(tmp_path / "in.wav", tone, subtype="FLOAT")
    info = Stretcher(tiny_model, device="cpu").stretch_file(src, tmp_path / "f.wav", 2.0)  # float: no clip
    assert info["clipped"] == 0
    loud = sf.read(str(tmp_path / "f.wav"))[0]
    over = int((np.abs(loud) > 1).sum())
    assert over > 0, "this case must overshoot full scale to test clipping"
    src16 = write(tmp_path / "in16.wav", tone * 0.999, subtype="PCM_16")
    assert stretch(src16, tmp_path / "o16.wav", "--rate", "2", checkpoint=tiny_model) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "clipped at full scale" in err and "dBFS" in err, err
    assert "error" not in err
    quiet = write(tmp_path / "quiet.wav", tone * 0.5, subtype="PCM_16")
    assert stretch(quiet, tmp_path / "q.wav", "--rate", "2", checkpoint=tiny_model) == 0
    assert "clipped" not in capsys.readouterr().err


# --- 6. non-finite weights and output ---------------------------------------------------------------


def test_checkpoint_with_nan_weights_is_refused(tmp_path, tiny_model, capsys):
    from gan_stretch.io import checkpoint
    from gan_stretch.models.model_file import load_model

    tensors, meta = checkpoint.load(tiny_model)
    name = next(k for k in tensors if k.startswith("autoencoder.") and tensors[k].is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    checkpoint.save(bad, tensors, meta)
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(bad)
    src = write(tmp_path / "in.wav", music_like(SR))
    assert stretch(src, tmp_path / "out.wav", "--rate", "2", checkpoint=bad) == 1
    assert "NaN" in one_error_line(capsys.readouterr().err)
    assert files(tmp_path) == ["in.wav", "nan.safetensors"]


def test_non_finite_output_is_never_written(tmp_path, tiny_model, monkeypatch):
    from gan_stretch.stretching import magnitudes

    s = Stretcher(tiny_model, device="cpu")
    monkeypatch.setattr(
        magnitudes,
        "stretch_frames",
        lambda model, frames, positions, rate, residual, *rest: torch.full(
            (frames.shape[0], len(positions), frames.shape[-1]), float("nan")
        ),
    )
    x = music_like(SR)
    with pytest.raises(AudioError, match="NaN"):
        s.stretch(x, SR, 2.0)
    src = write(tmp_path / "in.wav", x)
    for name in ("out.wav", "out.flac"):
        with pytest.raises(AudioError, match="NaN"):
            s.stretch_file(src, tmp_path / name, 2.0)
    assert files(tmp_path) == ["in.wav"]


# --- 7. signals and stale partial files ----------------------------------------------------------------


def test_sigterm_removes_the_partial_output(tmp_path, tiny_model):
    src = write(tmp_path / "in.wav", music_like(60 * SR, channels=2))
    proc = start_stretch(src, tmp_path / "out.wav", tiny_model)

    def writing():
        partial = [p for p in tmp_path.iterdir() if ".partial-" in p.name]
        return bool(partial) and partial[0].stat().st_size > 100_000

    wait_until(proc, writing, 120)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert files(tmp_path) == ["in.wav"]


def test_a_later_run_removes_stale_partials_of_its_output(tmp_path, tiny_model):
    from gan_stretch.io.checkpoint import HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.partial-{HOST}-{dead.pid}-k3j2h1.wav"
    alive = tmp_path / f".out.partial-{HOST}-{os.getpid()}-a1b2c3.wav"  # a running writer's
    other = tmp_path / f".other.partial-{HOST}-{dead.pid}-k3j2h1.wav"  # another output's
    for p in (stale, alive, other):
        p.write_bytes(b"RIFF" + bytes(1000))
    src = write(tmp_path / "in.wav", music_like(SR))
    assert stretch(src, tmp_path / "out.wav", "--rate", "2", checkpoint=tiny_model) == 0
    assert not stale.exists() and alive.exists() and other.exists()


# --- 8. one line instead of a traceback -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,words",
    [
        (["--griffin-lim", "-1"], ["--griffin-lim", "-1"]),
        (["--griffin-lim", "5000"], ["--griffin-lim", "5000"]),
        (["--device", "tpu"], ["device", "tpu"]),
        (["--device", "cuda:99"], ["cuda"]),
    ],
)
def test_bad_options_fail_in_one_line_before_any_work(tmp_path, tiny_model, capsys, args, words):
    src = write(tmp_path / "in.wav", music_like(SR))
    code = main(["stretch", str(src), str(tmp_path / "out.wav"), "--rate", "2", "--checkpoint", str(tiny_model), *args])
    assert code == 1
    line = one_error_line(capsys.readouterr().err)
    assert all(w in line for w in words), line
    assert files(tmp_path) == ["in.wav"]
    with pytest.raises(GanStretchError):
        Stretcher(
            tiny_model,
            device=args[1] if args[0] == "--device" else "cpu",
            griffin_lim=int(args[1]) if args[0] == "--griffin-lim" else 1,
        )


@pytest.mark.parametrize("chunk_frames", [0, -5, 2.5, True])
def test_block_size_must_be_a_positive_frame_count(tiny_model, chunk_frames):
    with pytest.raises(ConfigError, match="chunk_frames"):
        Stretcher(tiny_model, device="cpu", chunk_frames=chunk_frames)


@pytest.mark.parametrize("gap_ratio", [0.5, float("inf"), float("nan"), "2", True])
def test_gap_ratio_must_be_a_finite_factor_of_at_least_one(tiny_model, gap_ratio):
    with pytest.raises(ConfigError, match="gap_ratio"):
        Stretcher(tiny_model, device="cpu", gap_ratio=gap_ratio)


def test_bad_recipes_and_corpora_fail_before_any_work(tmp_path, tiny_model, tiny_corpus, capsys):
    run_dir = tmp_path / "run"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "manifest.json").write_text('{"kind": "true-tempo", "items": [')
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "manifest.json").write_text('{"kind": "true-tempo", "items": [{"id": "x"}]}')
    gan = ["autoencoder=" + str(tiny_model), "data=" + str(tiny_corpus.root), f"run_dir={run_dir}"]
    cases = [
        ("gan.yaml", gan + ["dilations=[1, 0]"], "dilations"),
        ("gan.yaml", gan + ["dilations=[]"], "dilations"),
        ("gan.yaml", gan + ["window=100000"], "window"),
        ("gan.yaml", gan + ["window=5000"], "window"),  # longer than the corpus's pairs
        ("gan.yaml", gan[:2] + ["run_dir=/proc/x"], "run_dir"),
        ("mapper.yaml", gan[:1] + [f"data={corrupt}", f"run_dir={run_dir}"], "corrupt"),
        ("autoencoder.yaml", [f"data={incomplete}", f"run_dir={run_dir}"], "incomplete"),
        ("autoencoder.yaml", [f"data={tiny_corpus.root}", f"run_dir={run_dir}", "quiet_db=10"], "quiet_db"),
    ]
    for recipe, overrides, word in cases:
        code = main(["train", str(ROOT / "recipes" / recipe), *overrides])
        err = capsys.readouterr().err
        assert code == 1, (overrides, err)
        assert word in one_error_line(err), (overrides, err)
        assert not run_dir.exists(), overrides


def test_every_numeric_recipe_field_declares_its_range():
    import dataclasses
    import typing

    from gan_stretch.train.stages import STAGES

    for cls in (stage.recipe for stage in STAGES.values()):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float, list[int]):
                assert f.metadata.get("lo") is not None and f.metadata.get("hi") is not None, (cls.__name__, f.name)


# --- 9. output formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,channels,words",
    [
        ("o.raw", 1, ["header"]),
        ("o.sd2", 1, ["resource"]),
        ("o.xi", 1, ["22050 Hz"]),
        ("o.htk", 1, ["22050 Hz"]),
        ("o.avr", 6, ["at most 2 channel"]),
        ("o.xi", 2, ["at most 1 channel"]),
        ("o.opus", 1, ["sample rates"]),
    ],
)
def test_formats_that_cannot_hold_the_audio_are_refused(tmp_path, tiny_model, capsys, name, channels, words):
    src = write(tmp_path / "in.wav", music_like(SR, channels=channels if channels > 1 else None))
    assert stretch(src, tmp_path / name, "--rate", "2", checkpoint=tiny_model) == 1
    line = one_error_line(capsys.readouterr().err)
    assert all(w in line for w in words) and "not recognised" not in line, line
    assert files(tmp_path) == ["in.wav"]


@pytest.mark.parametrize("name,fmt", [("o.aif", "AIFF"), ("o.caf", "CAF"), ("o.w64", "W64"), ("o.au", "AU")])
def test_other_formats_are_written_and_read_back(tmp_path, tiny_model, name, fmt):
    src = write(tmp_path / "in.wav", music_like(SR, channels=2))
    assert stretch(src, tmp_path / name, "--rate", "2", checkpoint=tiny_model) == 0
    info = sf.info(str(tmp_path / name))
    assert (info.format, info.samplerate, info.channels, info.frames) == (fmt, SR, 2, SR // 2)


# --- 10. API edges -------------------------------------------------------------------------------------


def test_integer_pcm_arrays_are_scaled_like_soundfile_reads_them(tiny_model):
    s = Stretcher(tiny_model, device="cpu")
    x = music_like(SR)
    for dtype, scale, offset in ((np.int16, 2**15, 0), (np.int32, 2**31, 0), (np.int8, 2**7, 0), (np.uint8, 2**7, 128)):
        pcm = np.round(x * (scale - 1) + offset).astype(dtype)
        y = s.stretch(pcm, SR, 2.0)
        assert y.dtype == np.float32
        as_float = ((pcm.astype(np.float64) - offset) / scale).astype(np.float32)  # what sf.read gives
        np.testing.assert_allclose(y, s.stretch(as_float, SR, 2.0), atol=1e-6)
    with pytest.raises(AudioError, match="int64"):
        s.stretch((x * 1000).astype(np.int64), SR, 2.0)


def test_ambiguous_shapes_and_half_precision(tiny_model):
    s = Stretcher(tiny_model, device="cpu")
    x = music_like(SR, channels=2)
    with pytest.raises(AudioError, match="samples, channels"):
        s.stretch(x[:, :40].T.copy(), SR, 2.0)  # [40, 2]: channels last
    for dtype in (torch.bfloat16, torch.float16):
        y = s.stretch(torch.from_numpy(x).to(dtype), SR, 2.0)
        assert isinstance(y, torch.Tensor) and y.shape == (2, SR // 2) and torch.isfinite(y).all()


@pytest.mark.parametrize(
    "time_map",
    [
        [],
        [(1, 2, 3)],
        [("a", "b")],
        [(100.5, 200)],
        [(float("nan"), 5)],
        7,
        [None],
        np.zeros((0, 2)),
    ],
)
def test_malformed_time_maps_raise_rate_errors(tiny_model, time_map):
    with pytest.raises(RateError):
        Stretcher(tiny_model, device="cpu").stretch(music_like(SR), SR, time_map=time_map)


def test_sample_rate_limits_agree_in_api_and_cli(tmp_path, tiny_model, capsys):
    s = Stretcher(tiny_model, device="cpu")
    for sr in (500, 4000, 384000):
        with pytest.raises(AudioError, match="8000 to 192000"):
            s.stretch(music_like(2000), sr, 2.0)
        src = write(tmp_path / f"in{sr}.wav", music_like(4000), sr)
        assert stretch(src, tmp_path / "out.wav", "--rate", "2", checkpoint=tiny_model) == 1
        assert "8000 to 192000" in one_error_line(capsys.readouterr().err)
        with pytest.raises(AudioError, match="8000 to 192000"):
            s.stretch_file(src, tmp_path / "out.wav", 2.0)
    assert not (tmp_path / "out.wav").exists()
    assert s.stretch(music_like(8000, sr=8000), 8000, 2.0).shape == (4000,)


# --- 11. corpora --------------------------------------------------------------------------------------


def test_corpus_sources_through_a_symlinked_music21(tmp_path, monkeypatch):
    from music21 import corpus

    from gan_stretch.data.items import corpus_sources

    real = Path(corpus.__file__).resolve().parent
    link = tmp_path / "linked-site-packages"
    link.symlink_to(real.parent)
    monkeypatch.setattr(corpus, "__file__", str(link / real.name / "__init__.py"))
    sources = corpus_sources(4)
    assert len(sources) == 4 and all(not s.startswith("..") and "/" in s for s in sources), sources
    assert sources[0].startswith("bach/")


def test_a_corpus_without_items_is_an_error_saying_why(tmp_path, monkeypatch):
    from gan_stretch.data import render
    from gan_stretch.data.corpus import build_true_tempo

    try:
        render.find_soundfont()
    except GanStretchError as e:
        pytest.skip(f"no soundfont: {e}")

    def cannot(src):
        raise ValueError("unparsable")

    monkeypatch.setattr(render, "music21_midi", cannot)
    with pytest.raises(GanStretchError, match="music21 cannot convert"):
        build_true_tempo(tmp_path / "c", pieces=3, seconds=1.0, rates=(2.0,))
    assert not (tmp_path / "c" / "manifest.json").exists()


# --- 12. overwriting --------------------------------------------------------------------------------------


def test_outputs_are_overwritten_unless_no_clobber(tmp_path, tiny_model, capsys):
    src = write(tmp_path / "in.wav", music_like(SR))
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    assert stretch(src, out, "--rate", "2", "--no-clobber", checkpoint=tiny_model) == 1
    assert "exists" in one_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"precious"
    assert stretch(src, out, "--rate", "2", checkpoint=tiny_model) == 0  # the default replaces it
    assert sf.info(str(out)).frames == SR // 2
    # folder mode: outputs already there are skipped (a rerun resumes a batch)
    album = tmp_path / "album"
    album.mkdir()
    write(album / "a.wav", music_like(SR))
    write(album / "b.wav", music_like(SR, seed=1))
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "a.wav").write_bytes(b"done before")
    capsys.readouterr()
    assert stretch(album, tmp_path / "slow", "--rate", "2", "-n", checkpoint=tiny_model) == 0
    assert (tmp_path / "slow" / "a.wav").read_bytes() == b"done before"
    assert sf.info(str(tmp_path / "slow" / "b.wav")).frames == SR // 2
    assert "1 already there" in capsys.readouterr().out
