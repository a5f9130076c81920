"""Generator: refines a time-scaled latent sequence with temporal context, conditioned on the rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from torch import nn

from gan_stretch.errors import ConfigError
from gan_stretch.settings import check_fields, setting


@dataclass
class GeneratorConfig:
    latent_dim: int = setting(129, 2, 4097)  # the autoencoder's latent width, gain channel included
    channels: int = setting(128, 1, 4096)
    kernel: int = setting(5, 1, 63)  # odd: the convolutions keep the sequence length
    dilations: list[int] = setting([1, 2, 4, 1, 2, 4], 1, 1024, min_items=1)  # one residual block each
    # per-frame inputs beside the latents (gan_stretch.dsp.timemap.frame_features: the local rate and
    # the attack mask); 0: conditioned on the mean rate only, as the models before them
    frame_features: int = setting(0, 0, 16)

    def __post_init__(self):
        check_fields(self, "generator config")
        if self.kernel % 2 == 0:
            raise ConfigError(f"generator config: kernel must be odd, got {self.kernel}")

    def to_dict(self) -> dict:
        return asdict(self)


class FiLMBlock(nn.Module):
    """Dilated residual conv block whose activations are scaled and shifted by the rate embedding."""

    def __init__(self, channels: int, kernel: int, dilation: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.film = nn.Linear(cond_dim, 2 * channels)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = rearrange(self.film(cond), "b (two c) -> two b c 1", two=2)
        h = torch.nn.functional.leaky_relu(self.conv(x), 0.2) * (1 + scale) + shift
        return x + self.out(h)


class LatentGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        cond_dim = 64
        self.rate_embed = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.inp = nn.Conv1d(cfg.latent_dim, cfg.channels, 1)
        self.frame_inp = nn.Conv1d(cfg.frame_features, cfg.channels, 1) if cfg.frame_features else None
        self.blocks = nn.ModuleList(FiLMBlock(cfg.channels, cfg.kernel, d, cond_dim) for d in cfg.dilations)
        self.outp = nn.Conv1d(cfg.channels, cfg.latent_dim, 1)
        nn.init.zeros_(self.outp.weight)  # starts as plain interpolation
        nn.init.zeros_(self.outp.bias)

    @property
    def context_frames(self) -> int:
        """Latent frames each side of a frame that reach its output (the dilated convolutions'
        receptive field): a streamed block needs this many more frames of input each side."""
        return sum(d * (self.cfg.kernel - 1) // 2 for d in self.cfg.dilations)

    def forward(self, latents: torch.Tensor, rate: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """latents: [B, T, L] time-scaled, rate: [B], features: [B, T, frame_features] (with
        ``cfg.frame_features``; ignored without) -> refined latents [B, T, L]."""
        cond = self.rate_embed(torch.log2(rate).to(latents.dtype)[:, None])
        h = self.inp(rearrange(latents, "b t l -> b l t"))
        if self.frame_inp is not None:
            if (
                features is None
                or features.shape[:2] != latents.shape[:2]
                or features.shape[-1] != self.cfg.frame_features
            ):
                got = None if features is None else tuple(features.shape)
                raise ValueError(
                    f"this generator needs per-frame features [B, T, {self.cfg.frame_features}] beside latents "
                    f"{tuple(latents.shape)}, got {got}"
                )
            h = h + self.frame_inp(rearrange(features.to(latents.dtype), "b t k -> b k t"))
        for block in self.blocks:
            h = block(h, cond)
        return latents + rearrange(self.outp(h), "b l t -> b t l")
