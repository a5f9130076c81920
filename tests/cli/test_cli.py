"""The ``gan-stretch stretch`` command: good files in, bad files refused cleanly."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gan_stretch.cli import main

from conftest import SR, music_like

HOP_SECONDS = 512 / 22050  # one STFT hop of the model


def write(path: Path, wave: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    """wave [C, N] or [N] -> file."""
    sf.write(str(path), wave.T if wave.ndim == 2 else wave, sr, subtype=subtype)
    return path


def stretch(*argv, checkpoint) -> int:
    return main(["stretch", *map(str, argv), "--checkpoint", str(checkpoint), "--griffin-lim", "2"])


@pytest.mark.parametrize(
    "sr,channels,seconds,rate",
    [
        (44100, 2, 1.5, "2"),
        (16000, 1, 1.0, "2"),
        (22050, 1, 1.0, "0.5"),
        (48000, 2, 0.7, "1.25"),
    ],
)
def test_stretch_file(tmp_path, tiny_model, capsys, sr, channels, seconds, rate):
    n = int(sr * seconds)
    wave = music_like(n, sr=sr, channels=channels if channels > 1 else None)
    src = write(tmp_path / "in.wav", wave, sr)
    dst = tmp_path / "out" / "stretched.wav"
    dst.parent.mkdir()
    assert stretch(src, dst, "--rate", rate, checkpoint=tiny_model) == 0
    assert dst.is_file()
    info = sf.info(str(dst))
    assert info.samplerate == sr
    assert info.channels == channels
    assert info.frames == round(n / float(rate))
    assert abs(info.duration - seconds / float(rate)) < HOP_SECONDS
    out, _ = sf.read(str(dst), always_2d=True)
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in dst.parent.iterdir()) == ["stretched.wav"]  # no temporary files left


@pytest.mark.parametrize("ext,fmt", [(".flac", "FLAC"), (".ogg", "OGG")])
def test_output_format_follows_extension(tmp_path, tiny_model, ext, fmt):
    src = write(tmp_path / "in.wav", music_like(22050), 22050)
    dst = tmp_path / f"out{ext}"
    assert stretch(src, dst, "--rate", "2", checkpoint=tiny_model) == 0
    info = sf.info(str(dst))
    assert info.format == fmt
    assert abs(info.frames - 11025) <= (0 if fmt == "FLAC" else 512)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", f"out{ext}"]


@pytest.mark.parametrize("flags", [["--phase-lock"], ["--griffin-lim", "0"], ["--no-residual"]])
def test_pipeline_flags(tmp_path, tiny_model, flags):
    """Each pipeline switch writes a whole file of the right length, and changes the result."""
    wave = music_like(22050, channels=2)
    src = write(tmp_path / "in.wav", wave, 22050, subtype="FLOAT")
    outs = {}
    for name, extra in (("flags", flags), ("default", [])):
        dst = tmp_path / f"{name}.wav"
        assert main(["stretch", str(src), str(dst), "--rate", "0.8", "--checkpoint", str(tiny_model), *extra]) == 0
        assert sf.info(str(dst)).frames == round(22050 / 0.8)
        outs[name] = sf.read(str(dst))[0]
    assert not np.allclose(outs["flags"], outs["default"], atol=1e-6)


def test_transient_switches(tmp_path, tiny_model):
    """A model trained with attacks at speed 1 plays them so by default; --no-transients and
    --no-decays each turn their stage off (a different, whole file), and the model file's own
    setting decides the default; --attack-frames chooses what Griffin-Lim does to attack frames and
    --attack-span how many frames around each onset play at speed 1."""
    from gan_stretch.models.model_file import load_model, save_model

    model = load_model(tiny_model)
    model.meta["transients"] = True
    with_attacks = tmp_path / "transients.safetensors"
    save_model(with_attacks, model)
    src = write(tmp_path / "in.wav", music_like(2 * 22050, seed=3), 22050, subtype="FLOAT")
    outs = {}
    for name, ckpt, extra in (
        ("default", with_attacks, []),
        ("no-transients", with_attacks, ["--no-transients"]),
        ("no-decays", with_attacks, ["--no-decays"]),
        ("plain-model", tiny_model, []),
        ("refine-attacks", with_attacks, ["--attack-frames", "refine"]),
        ("hold-attacks", with_attacks, ["--attack-frames", "hold"]),
        ("span-3-3", with_attacks, ["--attack-span", "3:3"]),
    ):
        dst = tmp_path / f"{name}.wav"
        assert main(["stretch", str(src), str(dst), "--rate", "0.6", "--checkpoint", str(ckpt), *extra]) == 0
        assert sf.info(str(dst)).frames == round(2 * 22050 / 0.6)
        outs[name] = sf.read(str(dst))[0]
    assert np.array_equal(outs["no-transients"], outs["plain-model"])  # off = a model trained without them
    # slowing down, Griffin-Lim leaves the attack frames as they are unless told to refine them
    assert np.array_equal(outs["hold-attacks"], outs["default"])
    assert not np.allclose(outs["refine-attacks"], outs["default"], atol=1e-5)
    assert not np.allclose(outs["span-3-3"], outs["default"], atol=1e-5)
    for a, b in (("default", "no-transients"), ("default", "no-decays"), ("no-decays", "no-transients")):
        assert not np.allclose(outs[a], outs[b], atol=1e-5), (a, b)


def console_script() -> str:
    found = shutil.which("gan-stretch", path=str(Path(sys.executable).parent)) or shutil.which("gan-stretch")
    if found is None:
        pytest.skip("the gan-stretch console script is not installed (pip install -e .)")
    return found


@pytest.mark.slow  # a fresh process: imports torch and the model again
def test_console_script(tmp_path, tiny_model):
    src = write(tmp_path / "in.wav", music_like(16000, sr=16000), 16000)
    dst = tmp_path / "out.wav"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [
            console_script(),
            "stretch",
            str(src),
            str(dst),
            "--rate",
            "0.5",
            "--checkpoint",
            str(tiny_model),
            "--griffin-lim",
            "2",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(dst))
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 32000)
    # and a failure: exit status 1, one clean error line, no traceback
    proc = subprocess.run(
        [
            console_script(),
            "stretch",
            str(src),
            str(tmp_path / "bad.wav"),
            "--rate",
            "0",
            "--checkpoint",
            str(tiny_model),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "rate" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "bad.wav").exists()


def test_stretch_folder(tmp_path, tiny_model, capsys):
    """A folder in, a folder out: same relative names and formats, each file stretched."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write(src / "a.wav", music_like(22050), 22050)
    write(src / "sub" / "b.flac", music_like(16000, sr=16000, channels=2), 16000)
    (src / "readme.txt").write_text("not audio")
    dst = tmp_path / "out"
    assert stretch(src, dst, "--rate", "2", checkpoint=tiny_model) == 0
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == ["a.wav", "sub/b.flac"]
    a, b = sf.info(str(dst / "a.wav")), sf.info(str(dst / "sub" / "b.flac"))
    assert (a.samplerate, a.channels, a.frames) == (22050, 1, 11025)
    assert (b.samplerate, b.channels, b.frames, b.format) == (16000, 2, 8000, "FLAC")
    assert stretch(src, src, "--rate", "2", checkpoint=tiny_model) == 1  # in place: refused
    assert "error:" in capsys.readouterr().err


def test_a_folder_is_stretched_with_every_setting_given(tmp_path, tiny_model):
    """Folder mode's workers get the command's settings (--no-decays, --attack-frames,
    --attack-span ...), not only the model and the phase settings: each file equals the same
    command on that file alone."""
    from gan_stretch.models.model_file import load_model, save_model

    model = load_model(tiny_model)
    model.meta["transients"] = True
    ckpt = tmp_path / "transients.safetensors"
    save_model(ckpt, model)
    src = tmp_path / "in"
    src.mkdir()
    write(src / "a.wav", music_like(2 * 22050, seed=3), 22050, subtype="FLOAT")
    flags = ["--rate", "0.6", "--checkpoint", str(ckpt), "--no-decays", "--attack-span", "3:1"]
    assert main(["stretch", str(src), str(tmp_path / "out"), "-j", "1", *flags]) == 0
    assert main(["stretch", str(src / "a.wav"), str(tmp_path / "one.wav"), *flags]) == 0
    assert main(["stretch", str(src / "a.wav"), str(tmp_path / "plain.wav"), *flags[:4]]) == 0
    folder, one = sf.read(str(tmp_path / "out" / "a.wav"))[0], sf.read(str(tmp_path / "one.wav"))[0]
    assert np.array_equal(folder, one)
    assert not np.allclose(one, sf.read(str(tmp_path / "plain.wav"))[0], atol=1e-5)


# --- bad input ----------------------------------------------------------------------------------


def text_file_as_wav(folder: Path) -> Path:
    path = folder / "notes.wav"
    path.write_text("this is not audio\n" * 100)
    return path


def silent_wav(folder: Path) -> Path:
    return write(folder / "silent.wav", np.zeros(22050, np.float32), 22050)


def nan_wav(folder: Path) -> Path:
    wave = music_like(22050)
    wave[1000:1010] = np.nan
    return write(folder / "nan.wav", wave, 22050, subtype="FLOAT")


def good_wav(folder: Path) -> Path:
    return write(folder / "in.wav", music_like(22050), 22050)


def truncated(folder: Path, ext: str) -> Path:
    path = write(folder / f"cut.{ext}", music_like(22050), 22050)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def inf_wav(folder: Path) -> Path:
    wave = music_like(22050)
    wave[5] = np.inf
    return write(folder / "inf.wav", wave, 22050, subtype="FLOAT")


def zero_length_wav(folder: Path) -> Path:
    return write(folder / "empty.wav", np.zeros(0, np.float32), 22050)


def bad_time_map(folder: Path) -> Path:
    (folder / "map.txt").write_text("11025 5000\n5000 8000\n")
    return good_wav(folder)


# name -> (make input, output name or None for "same as input", extra args, words the error must contain)
BAD = {
    "missing input": (lambda d: d / "nope.wav", "out.wav", ["--rate", "2"], ["not found", "nope.wav"]),
    "input is a folder": (
        lambda d: (d / "folder.wav").mkdir() or d / "folder.wav",
        "out.wav",
        ["--rate", "2"],
        ["folder"],
    ),
    "rate 0": (good_wav, "out.wav", ["--rate", "0"], ["rate", "0"]),
    "rate nan": (good_wav, "out.wav", ["--rate", "nan"], ["rate", "nan"]),
    "rate 10": (good_wav, "out.wav", ["--rate", "10"], ["rate", "10"]),
    "rate abc": (good_wav, "out.wav", ["--rate", "abc"], ["rate", "abc"]),
    "no rate": (good_wav, "out.wav", [], ["--rate"]),
    "output folder missing": (good_wav, "missing/out.wav", ["--rate", "2"], ["does not exist"]),
    "output equals input": (good_wav, None, ["--rate", "2"], ["input"]),
    "unknown output extension": (good_wav, "out.xyz", ["--rate", "2"], [".xyz"]),
    "no output extension": (good_wav, "out", ["--rate", "2"], ["format"]),
    "text file renamed .wav": (text_file_as_wav, "out.wav", ["--rate", "2"], ["cannot read", "notes.wav"]),
    "all-zero wav": (silent_wav, "out.wav", ["--rate", "2"], ["silent"]),
    "NaN in a float wav": (nan_wav, "out.wav", ["--rate", "2"], ["NaN"]),
    "Inf in a float wav": (inf_wav, "out.wav", ["--rate", "2"], ["Inf"]),
    "zero-length wav": (zero_length_wav, "out.wav", ["--rate", "2"], ["empty"]),
    "truncated wav": (lambda d: truncated(d, "wav"), "out.wav", ["--rate", "2"], ["truncated", "cut.wav"]),
    "truncated flac": (lambda d: truncated(d, "flac"), "out.wav", ["--rate", "2"], ["cannot read", "cut.flac"]),
    "truncated ogg": (lambda d: truncated(d, "ogg"), "out.wav", ["--rate", "2"], ["cut.ogg"]),
    "time map not monotonic": (bad_time_map, "out.wav", ["--time-map", "{dir}/map.txt"], ["monotonic"]),
    "duration absurd": (good_wav, "out.wav", ["--duration", "1000"], ["duration"]),
    "attack span not two counts": (good_wav, "out.wav", ["--rate", "2", "--attack-span", "2"], ["attack-span", "2:2"]),
    "attack span too long": (good_wav, "out.wav", ["--rate", "2", "--attack-span", "9:2"], ["attack_span", "8"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(tmp_path, tiny_model, capsys, case):
    make, out_name, args, words = BAD[case]
    src = make(tmp_path)
    dst = src if out_name is None else tmp_path / out_name
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    src_bytes = src.read_bytes() if src.is_file() else None

    code = stretch(src, dst, *[a.replace("{dir}", str(tmp_path)) for a in args], checkpoint=tiny_model)

    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    assert "Traceback" not in err
    after = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before, "the failed run left or changed files (an output or a temporary file)"
    if src_bytes is not None:
        assert src.read_bytes() == src_bytes  # the input is never touched


def test_bad_checkpoint(tmp_path, capsys):
    src = good_wav(tmp_path)
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(os.urandom(1000))
    for ckpt, word in ((bad, "corrupt"), (tmp_path / "missing.safetensors", "not found")):
        code = main(["stretch", str(src), str(tmp_path / "out.wav"), "--rate", "2", "--checkpoint", str(ckpt)])
        err = capsys.readouterr().err
        assert code == 1
        assert "error:" in err and word in err
        assert not (tmp_path / "out.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "model.safetensors"]


def test_unwritable_output_folder(tmp_path, tiny_model, capsys):
    import os

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    target = folder if os.geteuid() != 0 else Path("/proc")  # root writes anywhere but /proc
    code = stretch(good_wav(tmp_path), target / "out.wav", "--rate", "2", checkpoint=tiny_model)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "not writable" in err or "cannot write" in err, err
    assert not (target / "out.wav").exists()
    folder.chmod(0o700)


# --- standard input and output ------------------------------------------------------------------


def cli_process(*argv, stdin=None, **kw) -> subprocess.CompletedProcess:
    """``python -m gan_stretch.cli ARGV`` with bytes on stdin; stdout and stderr as bytes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gan_stretch.cli", *map(str, argv)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
        **kw,
    )


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # subprocesses
def test_standard_input_and_output_carry_wav(tmp_path, tiny_model):
    """``-`` in and out: WAV on stdout (the 'wrote' line goes to stderr), WAV or FLAC on stdin;
    other formats need --input-format; /dev/stdout is standard output too."""
    x = music_like(SR, channels=2)
    for fmt in ("WAV", "FLAC"):
        src = tmp_path / f"in.{fmt.lower()}"
        sf.write(str(src), x.T, SR, format=fmt, subtype="PCM_24")
        proc = cli_process("stretch", "-", "-", "--rate", "0.8", "--checkpoint", tiny_model, stdin=src.read_bytes())
        assert proc.returncode == 0, proc.stderr.decode()
        y, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        assert (sr, y.shape) == (SR, (round(SR / 0.8), 2))
        assert b"wrote standard output (WAV)" in proc.stderr
    # the same bytes as a file written by name
    named = tmp_path / "named.wav"
    assert cli_process("stretch", src, named, "--rate", "0.8", "--checkpoint", tiny_model).returncode == 0
    y_named, _ = sf.read(str(named), dtype="float32", always_2d=True)
    assert np.array_equal(y, y_named)
    proc = cli_process("stretch", src, "/dev/stdout", "--rate", "2", "--checkpoint", tiny_model)
    assert proc.returncode == 0 and sf.info(io.BytesIO(proc.stdout)).frames == SR // 2
    ogg = tmp_path / "in.ogg"
    sf.write(str(ogg), x.T, SR)
    proc = cli_process(
        "stretch", "-", tmp_path / "o.wav", "--rate", "2", "--checkpoint", tiny_model, stdin=ogg.read_bytes()
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == (
        "gan-stretch: error: cannot read standard input: it is not WAV or FLAC audio (it reads as OGG; "
        "pass --input-format to read it)"
    )
    proc = cli_process(
        "stretch",
        "-",
        tmp_path / "o.wav",
        "--rate",
        "2",
        "--input-format",
        "ogg",
        "--checkpoint",
        tiny_model,
        stdin=ogg.read_bytes(),
    )
    assert proc.returncode == 0 and sf.info(str(tmp_path / "o.wav")).frames == SR // 2
    proc = cli_process("stretch", "-", "-", "--rate", "2", "--checkpoint", tiny_model, stdin=b"")
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"standard input is empty" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_a_sox_pipeline(tmp_path, tiny_model):
    """sox in.wav -t wav - | gan-stretch stretch - - --rate 0.8 | sox -t wav - out.wav"""
    import shlex

    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), music_like(SR), SR)
    me = f"{shlex.quote(sys.executable)} -m gan_stretch.cli stretch - - --rate 0.8 --checkpoint {shlex.quote(str(tiny_model))}"
    proc = subprocess.run(
        f"sox {shlex.quote(str(src))} -t wav - | {me} | sox -t wav - {shlex.quote(str(dst))}",
        shell=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(dst))
    assert (info.samplerate, info.channels, info.frames) == (SR, 1, round(SR / 0.8))


# --- folders and sample formats -----------------------------------------------------------------


def test_files_in_a_nested_output_folder_are_listed_as_skipped(tmp_path, tiny_model, capsys):
    album = tmp_path / "album"
    (album / "inner").mkdir(parents=True)
    write(album / "a.wav", music_like(SR), SR)
    write(album / "inner" / "b.wav", music_like(SR, seed=1), SR)
    assert stretch(album, album / "inner", "--rate", "2", checkpoint=tiny_model) == 0
    out = capsys.readouterr().out
    assert "1 stretched into" in out
    assert f"skipped 1 audio file(s) in the output folder {album / 'inner'}" in out and "inner/b.wav" in out


@pytest.mark.parametrize(
    "subtype,ext,expected",
    [
        ("PCM_24", ".flac", "PCM_24"),
        ("PCM_24", ".aiff", "PCM_24"),
        ("FLOAT", ".flac", "PCM_24"),
        ("PCM_16", ".flac", "PCM_16"),
        ("PCM_24", ".ogg", "VORBIS"),
    ],
)
def test_high_resolution_sources_keep_24_bits_in_other_lossless_containers(
    tmp_path, tiny_model, subtype, ext, expected
):
    src = write(tmp_path / "in.wav", music_like(SR), SR, subtype=subtype)
    dst = tmp_path / f"out{ext}"
    assert stretch(src, dst, "--rate", "2", checkpoint=tiny_model) == 0
    assert sf.info(str(dst)).subtype == expected
