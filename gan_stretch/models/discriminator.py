"""Discriminator on latent sequences: is this the encoding of truly stretched music?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_stretch.settings import check_fields, setting


@dataclass
class DiscriminatorConfig:
    latent_dim: int = setting(129, 2, 4097)
    channels: int = setting(128, 1, 4096)
    layers: int = setting(4, 1, 12)
    conditional: bool = True  # also sees the time-scaled input it should be a stretch of

    def __post_init__(self):
        check_fields(self, "discriminator config")

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


@dataclass
class SpectrogramDiscriminatorConfig:
    n_freq: int = setting(1025, 2, 1 << 20)
    sample_rate: int = setting(22050, 1000, 10**6)
    channels: int = setting(16, 1, 1024)
    conditional: bool = True  # also sees the time-scaled input's frames
    db_range: float = setting(120.0, 0, 1000, above=True)
    # also sees each view's change from the frame before, times this (0: not). The views are scaled
    # for levels (50 dB to 1), which leaves frame-to-frame texture (tremolo, bowing, noise) at a few
    # hundredths: what a slowed stretch smooths away and a faster one sharpens, and what the plain
    # view cannot learn to see (docs/results/recorded-adversarial/: at chance on time-scaled recordings
    # against their own tempo without it, 94-100 % of windows told apart within 400 steps with 10)
    delta: float = setting(0.0, 0, 1000)
    # each view relative to its own mean over the window, bin by bin: it then sees how each band
    # moves in time, not the window's level or long-term spectrum (the time-scaled frames a stretch
    # starts from are a few dB quieter than a recording's own: a cue that says nothing of texture)
    relative: bool = False

    def __post_init__(self):
        check_fields(self, "spectrogram discriminator config")

    def to_dict(self) -> dict:
        return asdict(self)


class SpectrogramDiscriminator(nn.Module):
    """Is this spectrogram (dB frames of what users hear) a true stretch of its input?

    Two views of the same frames, each a stack of 2-D convolutions over (time, frequency): 80 mel
    bands (the envelope, and attacks across bands) and the linear bins averaged in eights (the
    harmonics and texture the mel view blurs). Conditioned on the time-scaled input's frames and
    the rate. Unlike the latent discriminator it sees the decoded output itself, where a smeared
    attack or a blurred partial is visible.
    """

    def __init__(self, cfg: SpectrogramDiscriminatorConfig):
        super().__init__()
        import torchaudio

        self.cfg = cfg
        fb = torchaudio.functional.melscale_fbanks(
            cfg.n_freq, 0.0, cfg.sample_rate / 2, 80, cfg.sample_rate, norm="slaney", mel_scale="slaney"
        )
        self.register_buffer("fb", fb.float().contiguous(), persistent=False)
        # output, input, its frame-to-frame change, log2(rate) plane
        in_ch = (2 if cfg.conditional else 1) + (1 if cfg.delta else 0) + 1
        self.views = nn.ModuleList(self._stack(in_ch, cfg.channels) for _ in range(2))

    @staticmethod
    def _stack(in_ch: int, ch: int) -> nn.ModuleList:
        conv = lambda i, o, k, s: spectral_norm(nn.Conv2d(i, o, k, stride=s, padding=(k[0] // 2, k[1] // 2)))
        return nn.ModuleList(
            [
                conv(in_ch, ch, (3, 9), (1, 2)),
                conv(ch, ch, (3, 9), (1, 2)),
                conv(ch, ch, (3, 9), (1, 2)),
                conv(ch, ch, (3, 3), (1, 1)),
                conv(ch, 1, (3, 3), (1, 1)),
            ]
        )

    def _views(self, db: torch.Tensor) -> list[torch.Tensor]:
        """dB frames [B, T, F] in [-db_range, 0] -> [mel [B, T, 80], linear [B, T, F // 8]], scaled near [-1, 1]
        (with ``relative``, each bin less its mean over the window's frames)."""
        mel = 10 * torch.log10((torch.pow(10.0, db / 10) @ self.fb).clamp_min(1e-12))
        lin = torch.nn.functional.avg_pool1d(db, 8)
        views = [(v.clamp_min(-100.0) + 50) / 50 for v in (mel, lin)]
        return [v - v.mean(dim=1, keepdim=True) for v in views] if self.cfg.relative else views

    def forward(self, db: torch.Tensor, rate: torch.Tensor, condition: torch.Tensor | None = None):
        """db, condition: [B, T, F]; rate: [B] -> (scores per view [[B, T, F']], features list)."""
        outs, conds = self._views(db), self._views(condition) if self.cfg.conditional else None
        scores, features = [], []
        for k, stack in enumerate(self.views):
            planes = [outs[k]] + ([conds[k]] if conds is not None else [])
            if self.cfg.delta:  # the change from the frame before (none before the first)
                change = outs[k][:, 1:] - outs[k][:, :-1]
                planes.append(torch.nn.functional.pad(change, (0, 0, 1, 0)) * self.cfg.delta)
            planes.append(torch.log2(rate).to(db.dtype)[:, None, None].expand_as(outs[k]))
            h = torch.stack(planes, dim=1)  # [B, C, T, F']
            for conv in stack[:-1]:
                h = torch.nn.functional.leaky_relu(conv(h), 0.2)
                features.append(h)
            scores.append(stack[-1](h).flatten(1))
        return scores, features
