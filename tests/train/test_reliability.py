"""Reliability: a training process killed with SIGKILL resumes exactly; random bytes and odd shapes
get clear errors, never crashes or half-written files."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_stretch import AudioError, CheckpointError, GanStretchError, RateError, Stretcher
from gan_stretch.io import checkpoint
from gan_stretch.io.audio import load
from gan_stretch.models.model_file import load_model

from conftest import DEBUG, overrides, partial_files, weights

ROOT = Path(__file__).resolve().parents[2]


def launch(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "gan_stretch.train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_step(proc: subprocess.Popen, step: int, safety_timeout: float = 600) -> None:
    """Reads the run's output until it prints "step N/..." with N >= ``step``. Driven by the run's
    progress alone; the timeout only stops a run that hangs from hanging the suite."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    deadline, seen = time.monotonic() + safety_timeout, []
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"no step {step} after {safety_timeout} s; output so far:\n{''.join(seen)}")
        assert line is not None, f"the run ended before step {step}; raise steps. Output:\n{''.join(seen)}"
        seen.append(line)
        done = re.search(r"\bstep (\d+)/\d+", line)
        if done and int(done.group(1)) >= step:
            return


def test_killed_training_resumes_without_lost_or_repeated_steps(tiny_corpus, tmp_path):
    steps = 400
    args = lambda run_dir: [
        str(DEBUG / "autoencoder.yaml"),
        *overrides("autoencoder", tiny_corpus, run_dir, steps, "save_every=10"),
    ]
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    proc = launch(args(killed))
    last = killed / "checkpoints" / "last.safetensors"
    # the run prints "step N/400" every 5 steps and saves every 10 right after printing: once it
    # prints step 35, the checkpoint of step 30 is whole
    wait_for_step(proc, 35)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = checkpoint.load(last)[1]["step"]  # the checkpoint is whole: it loads
    assert 30 <= step_at_kill < steps

    resumed = launch(args(killed))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"resuming from {last} at step {step_at_kill}" in out

    ref = launch(args(reference))
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out
    a, b = weights(killed / "model.safetensors"), weights(reference / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs from the uninterrupted run"
    assert not partial_files(killed) and not [p for p in killed.rglob(".*") if p.is_file()]


def test_random_bytes_never_load(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(40):
        blob = rng.bytes(int(rng.integers(0, 4096)))
        if i % 4 == 0:  # sometimes a plausible header followed by garbage
            blob = b"RIFF" + blob[:4] + b"WAVEfmt " + blob[8:]
        audio, ckpt = tmp_path / f"x{i}.wav", tmp_path / f"x{i}.safetensors"
        audio.write_bytes(blob)
        ckpt.write_bytes(blob)
        with pytest.raises(AudioError):
            load(audio)
        with pytest.raises(CheckpointError):
            load_model(ckpt)


def test_odd_shapes_and_values_get_specific_errors(tiny_model):
    s = Stretcher(tiny_model, device="cpu", griffin_lim=1)
    x = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1
    bad = [
        (np.zeros((0,), np.float32), AudioError),
        (np.zeros((2, 0), np.float32), AudioError),
        (np.zeros((1, 2, 100), np.float32), AudioError),
        (np.zeros(1000, np.float32), AudioError),
        (x.reshape(-1, 1)[:200], AudioError),  # [samples, channels]: transposed
        (np.where(np.arange(4000) == 7, np.nan, x), AudioError),
        (np.where(np.arange(4000) == 7, np.inf, x), AudioError),
        (np.array(["a", "b"]), AudioError),
        (x.astype(np.complex64), AudioError),
    ]
    for audio, err in bad:
        with pytest.raises(err):
            s.stretch(audio, 22050, 1.5)
    for rate in (0, -1, float("nan"), float("inf"), 0.1, 8, "fast", None):
        with pytest.raises(RateError):
            s.stretch(x, 22050, rate)
    for sr in (0, -22050, 22050.5, "22050"):
        with pytest.raises(GanStretchError):
            s.stretch(x, sr, 1.5)
    # tiny but valid inputs still come out at the right length
    for n in (1, 2, 511, 513):
        y = s.stretch(np.full(n, 0.1, np.float32), 22050, 0.5)
        assert y.shape == (2 * n,)
