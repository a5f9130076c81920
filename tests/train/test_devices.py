"""The suite runs on the CPU; on a machine with CUDA, the GPU gives the CPU's result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import conftest

ROOT = Path(__file__).resolve().parents[2]


def test_cuda_is_hidden_from_the_suite():
    """conftest hides CUDA before torch is imported, so in-process training and the exact-equality
    resume checks never run on a GPU, whatever the environment says."""
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert not torch.cuda.is_available()


GPU_CHECK = """
import sys
import numpy as np, torch
if not torch.cuda.is_available():
    print("no CUDA device visible"); sys.exit(3)
torch.backends.cudnn.allow_tf32 = False  # compare float32 with float32, not TF32 convolutions
torch.backends.cuda.matmul.allow_tf32 = False
import os
visible = os.environ.get("CUDA_VISIBLE_DEVICES")
sys.path.insert(0, "tests")
from conftest import music_like  # importing conftest hides CUDA (below, given back before CUDA starts)
if visible is None:
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
else:
    os.environ["CUDA_VISIBLE_DEVICES"] = visible
from gan_stretch import Stretcher
x = music_like(3 * 44100, sr=44100, channels=2)
for rate in (0.5, 1.7):
    cpu = Stretcher(device="cpu").stretch(x, 44100, rate)
    gpu = Stretcher(device="cuda").stretch(torch.from_numpy(x).cuda(), 44100, rate)
    assert gpu.is_cuda and tuple(gpu.shape) == cpu.shape
    err = float(np.sqrt(((gpu.cpu().numpy() - cpu) ** 2).mean() / (cpu ** 2).mean()))
    print(f"rate {rate}: relative RMS difference {err:.2e}")
    assert err < 1e-3, err
"""


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("nvidia-smi") is None, reason="no NVIDIA driver (nvidia-smi not found): no GPU to test"
)
def test_cuda_stretch_matches_the_cpu():
    """In a subprocess that sees the GPUs the suite was started with. Tolerance 1e-3 relative RMS:
    cuFFT and the CPU's FFT round differently, and the propagated phase sums those differences
    over the frames of a block."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if conftest.ORIGINAL_CUDA_VISIBLE_DEVICES is not None:
        env["CUDA_VISIBLE_DEVICES"] = conftest.ORIGINAL_CUDA_VISIBLE_DEVICES
    proc = subprocess.run(
        [sys.executable, "-c", GPU_CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
