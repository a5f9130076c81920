"""Discriminator on latent sequences: is this the encoding of truly stretched music?"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class DiscriminatorConfig:
    latent_dim: int = 129
    channels: int = 128
    layers: int = 4
    conditional: bool = True  # also sees the time-scaled input it should be a stretch of

    def to_dict(self) -> dict:
        return asdict(self)


class LatentDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        in_ch = cfg.latent_dim * (2 if cfg.conditional else 1) + 1  # + log2(rate) channel
        convs, ch = [], in_ch
        for i in range(cfg.layers):
            convs.append(spectral_norm(nn.Conv1d(ch, cfg.channels, 5, stride=1 if i == 0 else 2, padding=2)))
            ch = cfg.channels
        self.convs = nn.ModuleList(convs)
        self.head = spectral_norm(nn.Conv1d(ch, 1, 3, padding=1))

    def forward(self, latents: torch.Tensor, rate: torch.Tensor, condition: torch.Tensor | None = None):
        """latents, condition: [B, T, L]; rate: [B] -> (scores [B, T''], features list)."""
        parts = [latents]
        if self.cfg.conditional:
            parts.append(condition)
        parts.append(torch.log2(rate).to(latents.dtype)[:, None, None].expand(*latents.shape[:2], 1))
        h = rearrange(torch.cat(parts, dim=-1), "b t c -> b c t")
        features = []
        for conv in self.convs:
            h = torch.nn.functional.leaky_relu(conv(h), 0.2)
            features.append(h)
        return self.head(h).squeeze(1), features
