"""Every term of the training objectives, as plain functions."""
from __future__ import annotations

import librosa
import torch


class MelScale(torch.nn.Module):
    """dB frames (relative to the piece maximum) -> mel dB, floored 80 dB below, as the benchmark."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int = 80, floor_db: float = -80.0):
        super().__init__()
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)  # [M, F], librosa's defaults
        self.register_buffer("fb", torch.from_numpy(fb).float().T.contiguous(), persistent=False)  # [F, M]
        self.floor = 10 ** (floor_db / 10)

    def forward(self, db: torch.Tensor) -> torch.Tensor:
        power = torch.pow(10.0, db / 10.0)  # [..., F]
        return 10 * torch.log10((power @ self.fb).clamp_min(self.floor))


def db_l1(pred: torch.Tensor, target: torch.Tensor, floor_db: float = -80.0) -> torch.Tensor:
    """L1 in dB on linear-frequency frames, both floored where the benchmark stops listening."""
    return (pred.clamp_min(floor_db) - target.clamp_min(floor_db)).abs().mean()


def mel_l1(mel: MelScale, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (mel(pred) - mel(target)).abs().mean()


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: real -> 1, fake -> 0."""
    return ((real - 1) ** 2).mean() + (fake ** 2).mean()


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return ((fake - 1) ** 2).mean()


def feature_loss(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    """Feature matching: L1 between discriminator activations on real and generated sequences."""
    return sum((r.detach() - f).abs().mean() for r, f in zip(real_features, fake_features)) / len(real_features)
