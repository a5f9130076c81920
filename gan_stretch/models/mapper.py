"""Stretch mapper: the supervised baseline. Two Linear layers with tanh, frame by frame."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from gan_stretch.settings import check_fields, setting


@dataclass
class MapperConfig:
    latent_dim: int = setting(129, 2, 4097)  # the autoencoder's latent width, gain channel included
    hidden: int = setting(256, 1, 65536)

    def __post_init__(self):
        check_fields(self, "mapper config")

    def to_dict(self) -> dict:
        return asdict(self)


class StretchMapper(nn.Module):
    """Maps each time-scaled latent (and the rate) to the latent of the truly stretched frame."""

    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim + 1, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, cfg.latent_dim)
        )
        nn.init.zeros_(self.net[-1].weight)  # starts as plain interpolation
        nn.init.zeros_(self.net[-1].bias)

    context_frames = 0  # frame by frame: no neighbour reaches a frame's output

    def forward(self, latents: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """latents: [B, T, L], rate: [B] -> [B, T, L]."""
        cond = torch.log2(rate).to(latents.dtype)[:, None, None].expand(*latents.shape[:2], 1)
        return latents + self.net(torch.cat([latents, cond], dim=-1))
