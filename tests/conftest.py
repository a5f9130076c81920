"""Shared fixtures: tiny model files, a tiny true-tempo corpus, a test signal; markers and the CPU setup.

Everything runs on the CPU with one intra-op thread: on a 2-core machine that is busy with
something else, torch's default thread pool makes tiny convolutions 100x slower (threads spin
against each other), and a fixed thread count also keeps the float results reproducible.
CUDA is hidden before torch is first imported (a plain assignment, not setdefault: an inherited
CUDA_VISIBLE_DEVICES must not put in-process training on a GPU, where the exact-equality resume
checks would not hold). The one ``gpu`` test gets the original value back in a subprocess.

Markers (registered in pyproject.toml): ``slow`` (training runs, subprocesses, the packaged
model at every rate; ``make test-fast`` leaves them out), ``fluidsynth`` (needs the tiny
rendered corpus), ``rubberband`` (needs the rubberband binary), ``gpu`` (needs CUDA). A missing
tool turns its tests into skips that name it, never into fewer tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ORIGINAL_CUDA_VISIBLE_DEVICES = os.environ.get("CUDA_VISIBLE_DEVICES")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU only, even where a GPU exists; inherited by subprocesses
os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocesses some tests start

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

SR = 22050
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
DEBUG = RECIPES / "debug"  # the tiny sizes (16-wide networks, tens of steps, no evaluation)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    """Tests that need the rendered corpus carry the ``fluidsynth`` marker (and are ``slow``: they
    render audio or train), so ``-m "not fluidsynth"`` selects what runs without it."""
    for item in items:
        if "tiny_corpus" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fluidsynth)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts with one intra-op thread, whatever an earlier test's libraries did (the
    first ViSQOL measure in a process sets torch's thread count to the core count: the tiny
    training runs after it took 10-40x longer on a busy 2-core machine)."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    yield


def tool_marks(name: str) -> list:
    """Marks for a test that needs the executable ``name`` (fluidsynth, rubberband): the marker of
    that name, and a skip naming it where it is missing."""
    return [
        getattr(pytest.mark, name),
        pytest.mark.skipif(shutil.which(name) is None, reason=f"{name} is not installed (make system installs it)"),
    ]


def requires(name: str):
    """Decorator form of :func:`tool_marks`."""

    def apply(test):
        for mark in tool_marks(name):
            test = mark(test)
        return test

    return apply


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of a valid 'gan' model file with an untrained autoencoder and an identity generator."""
    from gan_stretch.dsp.spectrum import SpectralConfig
    from gan_stretch.models import AutoencoderConfig, FrameAutoencoder, GeneratorConfig, LatentGenerator
    from gan_stretch.models.model_file import Model, model_meta, save_model

    torch.manual_seed(0)
    spec = SpectralConfig()
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=spec.n_freq, hidden=[64, 32], latent=16))
    gen = LatentGenerator(GeneratorConfig(latent_dim=17, channels=16, dilations=[1, 2]))
    path = tmp_path_factory.mktemp("tiny_model") / "model.safetensors"
    save_model(path, Model("gan", spec, ae, gen, model_meta("gan", spec, ae, gen)))
    return path


def active_model(seed: int = 0, frame_features: int = 0):
    """A tiny 'gan' Model whose generator changes the latents (random output weights instead of the
    identity it starts as), so a test sees a model at work, not the time-scaled input alone;
    ``frame_features``: conditioned per frame as well (gan_stretch.dsp.timemap.frame_features)."""
    from gan_stretch.dsp.spectrum import SpectralConfig
    from gan_stretch.models import AutoencoderConfig, FrameAutoencoder, GeneratorConfig, LatentGenerator
    from gan_stretch.models.model_file import Model, model_meta

    torch.manual_seed(seed)
    cfg = SpectralConfig()
    ae = FrameAutoencoder(AutoencoderConfig(n_freq=cfg.n_freq, hidden=[64, 32], latent=16))
    gen = LatentGenerator(GeneratorConfig(latent_dim=17, channels=16, dilations=[1, 2], frame_features=frame_features))
    with torch.no_grad():
        torch.nn.init.normal_(gen.outp.weight, std=0.05)
    return Model(
        "gan", cfg, ae.eval().requires_grad_(False), gen.eval().requires_grad_(False), model_meta("gan", cfg, ae, gen)
    )


@pytest.fixture(scope="session")
def tiny_active():
    return active_model()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A true-tempo corpus of 3 pieces x 3 s at rates 1, 0.5 and 2 (fluidsynth renders, a few seconds).

    heldout=0.55 rather than 0.34: the split is a stable hash of the piece name, and for the first
    three pieces of the corpus (hash fractions 0.502, 0.617, 0.612) 0.34 holds none out, while 0.55
    holds out exactly one (bach/bwv1.6) and leaves two for training.
    """
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed (apt-get install fluidsynth): cannot render a corpus")
    from gan_stretch.data.corpus import build_true_tempo
    from gan_stretch.data.render import find_soundfont
    from gan_stretch.errors import GanStretchError

    try:
        find_soundfont()
    except GanStretchError as e:
        pytest.skip(f"no General MIDI soundfont: {e}")
    out = tmp_path_factory.mktemp("corpus") / "true-tempo"
    corpus = build_true_tempo(out, pieces=3, heldout=0.55, seconds=3.0, rates=(0.5, 2.0))
    if len(corpus.items) != 3:  # one clear failure instead of every training test failing its own way
        pytest.fail(f"the tiny corpus holds {len(corpus.items)} of 3 pieces (the build's 'skipping' lines say why)")
    return corpus


def music_like(n: int, sr: int = SR, seed: int = 0, channels: int | None = None) -> np.ndarray:
    """A deterministic, non-silent test signal: a few harmonic tones with onsets, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    shape = (channels, n) if channels else (n,)
    out = np.zeros(shape, np.float64)
    for _ in range(4):
        f0 = rng.uniform(150, 900)
        onset = rng.uniform(0, t[-1] * 0.6)
        env = np.where(t >= onset, np.exp(-(t - onset) * rng.uniform(1, 4)), 0.0)
        tone = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) / h for h in (1, 2, 3))
        out += 0.15 * env * tone
    out += 0.005 * rng.standard_normal(shape)
    return out.astype(np.float32)


def start_stretch(src, dst, checkpoint, *extra: str, **popen) -> subprocess.Popen:
    """``python -m gan_stretch.cli stretch SRC DST --rate 0.5 --griffin-lim 8 ...`` in a child
    process (this checkout's package, one OpenMP thread, no GPU; slow enough to be stopped
    mid-file), its output captured as text. ``popen``: more subprocess.Popen arguments."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    command = [sys.executable, "-m", "gan_stretch.cli", "stretch", str(src), str(dst), "--rate", "0.5"]
    command += ["--checkpoint", str(checkpoint), "--griffin-lim", "8", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_until(proc, ready, seconds: float) -> None:
    """Poll ``ready()`` every 50 ms while ``proc`` runs, for at most ``seconds``; the child must
    still be running at the end (a test that stops it needs something to stop)."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the stretch ended before it could be stopped"


# --- tiny training runs (tests/train/ and the promises) ------------------------------------------


def overrides(stage: str, corpus, run_dir: Path, steps: int, *extra: str, ae: Path | None = None) -> list[str]:
    """The paths and step count of a run of ``recipes/debug/{stage}.yaml``, and ``extra``."""
    out = [f"data={corpus.root}", f"run_dir={run_dir}", f"steps={steps}", *extra]
    return out + ([f"autoencoder={ae}"] if ae is not None else [])


def run_stage(stage: str, corpus, run_dir: Path, steps: int, *extra: str, ae: Path | None = None):
    """A tiny run of the ``stage`` in this process (recipes/debug/)."""
    from gan_stretch.train import run

    return run(DEBUG / f"{stage}.yaml", overrides(stage, corpus, run_dir, steps, *extra, ae=ae))


def weights(path: Path) -> dict[str, torch.Tensor]:
    from gan_stretch.io import checkpoint

    return checkpoint.load(path)[0]


def partial_files(folder: Path) -> list[Path]:
    """Temporary files of atomic writes (``.{stem}.partial-XXXX{suffix}``) under ``folder``."""
    from gan_stretch.io import checkpoint

    return [p for p in folder.rglob(f".*{checkpoint.PARTIAL}*") if p.is_file()]


# --- recorded music as the Debian packages install it (tests/data, tests/eval) ----------------------


def tone_music(seconds: float, sr: int, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    return np.stack([tone * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """A file system root holding the four packages' music in their installed layout: plain Ogg
    files, stem folders and a .pk3 zip archive; short and at low sample rates to be quick."""
    root = tmp_path_factory.mktemp("root")
    sr = 22050
    wes = root / "usr/share/games/wesnoth/1.16/data/core/music"
    wes.mkdir(parents=True)
    for i in range(5):
        sf.write(wes / f"piece{i}.ogg", tone_music(4 + i, sr, i).T, sr)
    sf.write(wes / "effect.ogg", tone_music(4, 11025, 9).T, 11025)  # below 22.05 kHz: not music
    for pkg in ("muldjord", "sectoid"):
        for i in range(3):
            song = root / f"usr/share/games/fretsonfire/data/songs/{pkg}/song{i}"
            song.mkdir(parents=True)
            sf.write(song / "song.ogg", tone_music(5, sr, 10 + i).T, sr)
            sf.write(song / "guitar.ogg", tone_music(5, sr, 20 + i).T, sr)
    pk3 = root / "usr/share/games/nexuiz/data/music.pk3"
    pk3.parent.mkdir(parents=True)
    with zipfile.ZipFile(pk3, "w") as z:
        for i in range(4):
            tmp = root / f"track{i}.ogg"
            sf.write(tmp, tone_music(5, sr, 30 + i, channels=1).T, sr)
            z.write(tmp, f"sound/cdtracks/track{i}.ogg")
            tmp.unlink()
    return root
