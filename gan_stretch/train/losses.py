"""Every term of the training objectives, as plain functions."""

from __future__ import annotations

import torch
import torchaudio


class MelScale(torch.nn.Module):
    """dB frames (relative to the piece maximum) -> mel dB, floored 80 dB below, as the benchmark."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int = 80, floor_db: float = -80.0):
        super().__init__()
        # Slaney mel scale and norm: the filters of librosa.filters.mel, which the benchmark uses.
        fb = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
        )  # [F, M]
        self.register_buffer("fb", fb.float().contiguous(), persistent=False)
        self.floor = 10 ** (floor_db / 10)

    def forward(self, db: torch.Tensor) -> torch.Tensor:
        power = torch.pow(10.0, db / 10.0)  # [..., F]
        return 10 * torch.log10((power @ self.fb).clamp_min(self.floor))


def db_l1(pred: torch.Tensor, target: torch.Tensor, floor_db: float = -80.0) -> torch.Tensor:
    """L1 in dB on linear-frequency frames, both floored where the benchmark stops listening."""
    return (pred.clamp_min(floor_db) - target.clamp_min(floor_db)).abs().mean()


def mel_l1(mel: MelScale, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (mel(pred) - mel(target)).abs().mean()


def decoded_mel_l1(mel: MelScale, decode, pred: torch.Tensor, target: torch.Tensor, rows) -> torch.Tensor:
    """L1 on mel dB of latents decoded by the frozen autoencoder, on a subset ``rows`` of the frames.

    pred, target: [B, T, L]; rows: indices into the B*T frames (decoding every frame costs more
    than the rest of the step, and a random subset is an unbiased estimate).
    """
    pick = lambda x: x.reshape(-1, x.shape[-1])[rows]
    return mel_l1(mel, decode(pick(pred)), decode(pick(target)))


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: real -> 1, fake -> 0."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return ((fake - 1) ** 2).mean()


def feature_loss(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    """Feature matching: L1 between discriminator activations on real and generated sequences."""
    return sum((r.detach() - f).abs().mean() for r, f in zip(real_features, fake_features)) / len(real_features)


def feature_statistics_loss(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    """Feature matching without pairs (Salimans et al. 2016): L1 between the mean discriminator
    activations ([B, C, T] averaged over batch and time) on real and generated sequences. Unpaired
    real and fake windows share no frame-by-frame content, only their statistics."""
    terms = [
        (r.detach().mean(dim=(0, 2)) - f.mean(dim=(0, 2))).abs().mean() for r, f in zip(real_features, fake_features)
    ]
    return sum(terms) / len(terms)
