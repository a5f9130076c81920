"""One clear line for each mistake a user makes (commands and API), corpus options checked before
any rendering, help for every option, --version, and no progress bar drawn into logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gan_stretch.cli.main import main, parser
from gan_stretch.errors import GanStretchError

from conftest import SR, music_like

ROOT = Path(__file__).resolve().parents[2]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gan-stretch: error: "), err
    return lines[0]


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(str(path), music_like(SR), SR)
    return path


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--rate", "-inf"], "rate must be a finite number in [0.25, 4.0], got -inf"),
        (["--rate", "-1e3"], "rate must be a finite number in [0.25, 4.0], got -1000.0"),
        (["--rate", "2", "--griffin-lim", "-1"], "--griffin-lim must be an iteration count in [0, 1000], got -1"),
        (["--rate", "2", "--pitch", "-inf"], "pitch must be a finite number of semitones in [-24, 24], got -inf"),
        (["--rate", "2", "--input-format", "wav"], "--input-format is for input '-'"),
    ],
)
def test_stretch_option_mistakes_get_one_line(wav, tmp_path, tiny_model, capsys, extra, expected):
    code = main(["stretch", str(wav), str(tmp_path / "out.wav"), "--checkpoint", str(tiny_model), *extra])
    assert code == 1
    assert expected in one_line(capsys.readouterr().err)
    assert not (tmp_path / "out.wav").exists()


def test_outputs_that_are_folders_or_have_no_format_say_so(wav, tmp_path, tiny_model, capsys):
    for out, expected in (
        (tmp_path, f"cannot write {tmp_path}: it is a folder; give a file name such as {tmp_path / 'out.wav'}"),
        (tmp_path / "out", "the name has no extension to choose the audio format by"),
    ):
        assert main(["stretch", str(wav), str(out), "--rate", "2", "--checkpoint", str(tiny_model)]) == 1
        line = one_line(capsys.readouterr().err)
        assert expected in line and "unknown audio format" not in line


def test_a_folder_as_checkpoint_is_called_a_folder(wav, tmp_path, tiny_model, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(Path(tiny_model).read_bytes())
    assert main(["stretch", str(wav), str(tmp_path / "o.wav"), "--rate", "2", "--checkpoint", str(run)]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"checkpoint {run} is a folder; give a model file (it holds model.safetensors)" in line


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--seconds", "0"], "seconds (the length of each item) must be a positive number, got 0.0"),
        (["--seconds", "-1"], "seconds (the length of each item) must be a positive number, got -1.0"),
        (["--rates", "0"], "every rate must be a positive number (2 halves the duration), got 0.0"),
        (["--programs", "200"], "programs must be General MIDI program numbers from 0 to 127, got 200"),
        (["--pieces", "0"], "pieces must be at least 1, got 0"),
        (["--heldout", "1.5"], "heldout (the fraction of pieces held out) must be in [0, 1], got 1.5"),
        (["--heldout", "1"], "heldout 1 holds every piece out, which leaves no training items"),
        (["--sample-rate", "100"], "sample rate must be a whole number of Hz from 8000 to 192000, got 100"),
    ],
)
def test_midi_corpus_options_are_checked_before_rendering(tmp_path, capsys, argv, expected):
    out = tmp_path / "corpus"
    assert main(["data", "midi", "--out", str(out), *argv]) == 1
    assert expected in one_line(capsys.readouterr().err)
    assert not out.exists()  # nothing rendered, no manifest promised


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--excerpts", "0"], "excerpts (per file) must be at least 1, got 0"),
        (["--audio", "nonexist"], "audio folder not found: nonexist"),
        (["--seconds", "0"], "seconds (the length of each item) must be a positive number"),
    ],
)
def test_teacher_corpus_options_are_checked_before_any_work(tmp_path, capsys, argv, expected):
    music = tmp_path / "music"
    music.mkdir()
    sf.write(str(music / "a.wav"), music_like(2 * SR), SR)
    out = tmp_path / "corpus"
    assert main(["data", "teacher", "--out", str(out), "--audio", str(music), *argv]) == 1
    assert expected in one_line(capsys.readouterr().err)
    assert not out.exists()


def test_every_option_of_every_command_is_explained():
    """``--help`` of every command and subcommand says what each option does."""
    import argparse

    def walk(p: argparse.ArgumentParser, name: str):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            elif action.help is None:
                yield f"{name} {'/'.join(action.option_strings) or action.dest}"

    assert list(walk(parser(), "gan-stretch")) == []


def test_version(capsys):
    from gan_stretch import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"gan-stretch {__version__}"


def test_the_api_takes_a_whole_float_sample_rate_and_calls_faint_audio_faint(tiny_model):
    from gan_stretch.errors import AudioError
    from gan_stretch.stretching.stretcher import Stretcher

    s = Stretcher(tiny_model, device="cpu", griffin_lim=0)
    x = music_like(SR)
    assert np.array_equal(s.stretch(x, 22050.0, 2), s.stretch(x, SR, 2))
    with pytest.raises(AudioError, match="sample rate must be a whole number of Hz, got 22050.5"):
        s.stretch(x, 22050.5, 2)
    with pytest.raises(AudioError) as e:
        s.stretch(np.full(SR, 1e-9, np.float32), SR, 2)
    assert "every sample is zero" not in str(e.value)
    assert "its loudest sample is 1e-09 (-180 dBFS), below -140 dBFS" in str(e.value)


def test_the_api_device_error_names_no_command_line_option():
    import torch

    from gan_stretch.errors import ConfigError
    from gan_stretch.models.model_file import check_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(ConfigError) as e:
        check_device("cuda")
    assert "--device" not in str(e.value) and "device cpu" in str(e.value)


def test_an_empty_recipe_asks_for_a_stage(tmp_path):
    from gan_stretch.train.recipes import load_recipe

    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(GanStretchError, match=r"recipe .*empty.yaml names no stage; add 'stage: NAME' \(one of "):
        load_recipe(empty)


def test_a_network_size_change_on_resume_is_one_line():
    import torch

    from gan_stretch.io.checkpoint import mismatch

    try:
        torch.nn.Linear(4, 3).load_state_dict(torch.nn.Linear(5, 3).state_dict())
    except RuntimeError as e:
        text = mismatch(e)
    assert "\n" not in text
    assert text == "the network's size changed: weight is [3, 5] in the saved state and [3, 4] in this recipe"


@pytest.mark.slow  # a fresh interpreter
def test_train_module_without_arguments_fails_with_its_usage():
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "gan_stretch.train", *a], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    bare, helped = run(), run("--help")
    assert bare.returncode == 2 and "usage:" in bare.stderr and "give a recipe file" in bare.stderr
    assert helped.returncode == 0 and helped.stdout.startswith("usage:")


def test_no_progress_bar_is_drawn_when_stderr_is_not_a_terminal(capsys):
    from gan_stretch.runtime import parallel

    results = [r for _, r, _ in parallel.imap(abs, [-1, -2, -3], 1, desc="items")]
    assert results == [1, 2, 3]
    assert capsys.readouterr().err == ""  # pytest's capture is no terminal
