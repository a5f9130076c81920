"""Frame autoencoder: one STFT frame of dB magnitudes <-> one latent vector.

Six Linear layers with tanh between them (three encode, three decode). The frame's loudness
(its maximum in dB) is carried outside the network as the last latent channel, so the network
spends its capacity on the spectral shape, not on the level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from gan_stretch.errors import ConfigError
from gan_stretch.settings import check_fields, setting


@dataclass
class AutoencoderConfig:
    n_freq: int = setting(1025, 2, 1 << 20)  # STFT bins of a frame
    hidden: list[int] = setting([1024, 512], 1, 65536, min_items=2)  # widths of the two hidden layers
    latent: int = setting(128, 1, 4096)  # shape code width (a latent vector adds one gain channel)
    db_range: float = setting(120.0, 0, 1000, above=True)

    def __post_init__(self):
        check_fields(self, "autoencoder config")
        if len(self.hidden) != 2:
            raise ConfigError(f"autoencoder config: hidden must list two layer widths, got {self.hidden}")

    @property
    def latent_dim(self) -> int:
        """Width of a latent vector: the shape code plus one gain channel."""
        return self.latent + 1

    def to_dict(self) -> dict:
        return asdict(self)


FUSED_ROWS, FUSED_PAD = 1024, 128  # row pieces of the oneDNN products (see _layers)


def _fused(x: torch.Tensor) -> bool:
    """Whether :func:`_layers` runs on oneDNN here: float32 on the CPU, outside autograd."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled  # torch.backends.mkldnn.flags(enabled=False) turns it off
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _layers(seq: nn.Sequential, x: torch.Tensor, clamp_last: bool = False) -> torch.Tensor:
    """``seq`` (Linear layers, a Tanh after all but maybe the last) on ``x`` [..., in], and the
    result clamped to [-1, 1] with ``clamp_last``.

    Without gradients on the CPU each Linear runs as oneDNN's matrix product with the tanh (or the
    clamp) fused into it: torch's Linear calls MKL, whose float32 product takes its AVX2 path on
    AMD processors (83 GFLOP/s on one core of this project's AMD EPYC against oneDNN's 175 with
    AVX-512), and the fused activation saves a pass over the output. The sums are ordered
    differently: the results differ from Linear's by float rounding (a few 1e-6)."""
    mods = list(seq)
    if not _fused(x) or not all(isinstance(m, (nn.Linear, nn.Tanh)) for m in mods):
        out = seq(x)
        return out.clamp(-1, 1) if clamp_last else out
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    steps = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Tanh):
            continue
        attr, scalars = "none", []
        if i + 1 < len(mods) and isinstance(mods[i + 1], nn.Tanh):
            attr = "tanh"
        elif clamp_last and i == len(mods) - 1:
            attr, scalars = "hardtanh", [-1.0, 1.0]
        steps.append((m, attr, scalars))
    out = x.new_empty(x.shape[0], steps[-1][0].out_features)
    # oneDNN keeps a compiled product per row count (about 1 MB each, up to 1024 of them): rows go
    # in pieces of FUSED_ROWS, the last one zero-padded to a multiple of FUSED_PAD, so a stretch of
    # any length uses a few row counts and memory stays flat (every block has another row count)
    for lo in range(0, x.shape[0], FUSED_ROWS):
        h = x[lo : lo + FUSED_ROWS]
        n = h.shape[0]
        if n % FUSED_PAD:
            h = torch.nn.functional.pad(h, (0, 0, 0, FUSED_PAD - n % FUSED_PAD))
        for m, attr, scalars in steps:
            h = torch.ops.mkldnn._linear_pointwise(h, m.weight, m.bias, attr, scalars, "")
        out[lo : lo + n] = h[:n]
    if clamp_last and not isinstance(mods[-1], nn.Linear):
        out = out.clamp(-1, 1)
    return out.reshape(*lead, out.shape[-1])


class FrameAutoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        h1, h2 = cfg.hidden
        self.encoder = nn.Sequential(
            nn.Linear(cfg.n_freq, h1),
            nn.Tanh(),
            nn.Linear(h1, h2),
            nn.Tanh(),
            nn.Linear(h2, cfg.latent),
            nn.Tanh(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(cfg.latent, h2),
            nn.Tanh(),
            nn.Linear(h2, h1),
            nn.Tanh(),
            nn.Linear(h1, cfg.n_freq),
        )

    def encode(self, db_rel: torch.Tensor) -> torch.Tensor:
        """db_rel: [..., F] in [-db_range, 0] -> latents [..., latent + 1] in [-1, 1]."""
        r = self.cfg.db_range
        gain = db_rel.amax(dim=-1, keepdim=True)  # [..., 1]
        shape = 1 + 2 * (db_rel - gain) / r  # frame maximum at +1
        return torch.cat([_layers(self.encoder, shape), 1 + 2 * gain / r], dim=-1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: [..., latent + 1] -> db_rel [..., F] in [-db_range, 0]."""
        r = self.cfg.db_range
        code, gain = latents[..., :-1], latents[..., -1:].clamp(-1, 1)
        shape = _layers(self.decoder, code.clamp(-1, 1), clamp_last=True)
        if torch.is_grad_enabled():
            return ((shape - 1) * r / 2 + (gain - 1) * r / 2).clamp(-r, 0)
        # the same arithmetic in place, without four temporaries of the frames' size (x * r / 2 is
        # x * (r / 2) to the bit: halving is exact)
        return shape.sub_(1).mul_(r / 2).add_((gain - 1) * r / 2).clamp_(-r, 0)

    def forward(self, db_rel: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(db_rel))
