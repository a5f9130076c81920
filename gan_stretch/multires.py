"""Two resolutions: the band above a split frequency from frames a quarter as long.

The model's frames (2048 samples at 22.05 kHz, 93 ms) resolve the partials of notes, but an attack
inside one is spread over the whole window: the phase path and any refinement smear it (pre-echo),
and cymbals and hi-hats lose their edges. Multi-resolution stretchers (Rubber Band R3) analyse the
high band with shorter windows. Here the band above ``split_hz`` is made again from frames four
times shorter, along the same time map (attacks at speed 1 on the same spans, so both bands keep
their timing), with the long path's change of level carried over: each short frame gets the ratio
of the long path's output to its time-scaled input (the model's refinement and the real-time
decays), read at its bin and time. The two bands are cross-faded over one octave around
``split_hz`` (power complementary) and their signals summed.

Written here because no library stretches along an arbitrary time map at two resolutions.
"""

from __future__ import annotations

import math

import torch

from . import spectral, synthesis
from .spectral import SpectralConfig
from .streaming import OverlapAdd
from .timemap import FramePlan, plan_frames

FACTOR = 4  # the short frames' length and hop are about the long ones' over this
MAX_GAIN = 10.0  # the long path's level change carried over is capped at +20 dB (the input near zero)


def short_config(cfg: SpectralConfig) -> SpectralConfig:
    """Frames about FACTOR times shorter than ``cfg``'s, with the same overlap (an even length)."""
    hop = max(1, round(cfg.hop / FACTOR))
    n_fft = max(2, 2 * round(cfg.n_fft * hop / cfg.hop / 2))
    return SpectralConfig(sample_rate=cfg.sample_rate, n_fft=n_fft, hop=hop, db_range=cfg.db_range)


def crossover(cfg: SpectralConfig, split_hz: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of the low and the high band at each bin of ``cfg``: ([F], [F]). The high band's is
    0 up to half an octave below ``split_hz`` and 1 from half an octave above, rising as a sine
    between; the low band's is the matching cosine, so the two bands' powers add up to one."""
    hz = torch.arange(cfg.n_freq, dtype=torch.float64) * cfg.sample_rate / cfg.n_fft
    ramp = (torch.log2(hz.clamp_min(1e-3) / split_hz) + 0.5).clamp(0, 1) * (math.pi / 2)
    return torch.cos(ramp).float().to(device), torch.sin(ramp).float().to(device)


class ShortBand:
    """The high band of the block loop at short frames: per block, the output samples of the long
    path's block, from the input's short frames and the long path's level change."""

    def __init__(self, cfg: SpectralConfig, plan: FramePlan, n_in_samples: int, split_hz: float, device):
        self.cfg, self.short = cfg, short_config(cfg)
        self.n_out = plan.tmap.n_out
        self.n_in = self.short.n_frames(n_in_samples)
        self.plan = plan_frames(plan.tmap, plan.spans, self.short, self.n_in, device)
        self.high = crossover(self.short, split_hz, device)[1][:, None]  # [F_s, 1]
        self.low = crossover(cfg, split_hz, device)[0][:, None]  # [F, 1]: the long path's share
        heard = (self.high[:, 0] > 0).nonzero()
        self.first_bin = int(heard[0, 0]) if len(heard) else self.short.n_freq  # short bins below are silent
        # the long bin at each short bin's frequency
        self.bins = torch.arange(self.first_bin, self.short.n_freq, device=device) * (cfg.n_fft / self.short.n_fft)
        self.output = OverlapAdd(self.short, self.n_out)
        self.carry = None  # (first short frame, propagated phase) of the previous block
        # the level change is measured over the long bins around each short bin's frequency
        self.pool = torch.tensor([0.5, 1, 1, 1, 0.5], device=device)[None, None]

    def frame_at(self, j: int) -> int:
        """The first short frame at or after long frame j's centre."""
        return -(-j * self.cfg.hop // self.short.hop)

    def gain(self, out: torch.Tensor, scaled: torch.Tensor, a0: int, a: int, b: int) -> torch.Tensor:
        """The long path's level change (its output magnitudes ``out`` over its time-scaled input's
        ``scaled``, both [C, F, T] from long frame ``a0``) at the short bins from ``first_bin`` and
        the short frames a..b-1: [C, F_s - first_bin, b - a]."""
        c, f, t = out.shape

        def pooled(x):  # [C, F, T] magnitudes -> [C, T, F] powers summed over a few bins around each
            rows = x.square().transpose(-1, -2).reshape(c * t, 1, f)
            return torch.nn.functional.conv1d(rows, self.pool, padding=2).reshape(c, t, f)

        ratio = ((pooled(out) + 1e-12) / (pooled(scaled) + 1e-12)).sqrt_().clamp_(max=MAX_GAIN)  # [C, T, F]
        ratio = spectral.time_scale(ratio, self.bins, dim=-1)  # at the short bins: [C, T, F_s']
        where = torch.arange(a, b, device=out.device, dtype=torch.float64) * (self.short.hop / self.cfg.hop) - a0
        return spectral.time_scale(ratio, where.float()).transpose(-1, -2)

    def block(self, source, a, b, j0, j1, mag, scaled, keep, inverse, last: bool, n_iter: int, held):
        """The high band of long output frames j0..j1-1, from their block's context a..b-1:
        (first sample, the samples now final [C, k]). ``mag`` and ``scaled`` [C', F, b - a]: the
        long path's output magnitudes and time-scaled input for the channels ``keep`` (``inverse``
        maps them back); ``last``: no block follows; ``held`` [short frames] frames Griffin-Lim
        keeps, or None."""
        positions = self.plan.positions
        n_short = positions.shape[0]
        sa = self.frame_at(a)
        end = b >= self.cfg.n_frames(self.n_out)  # the context reaches the output's end: every short frame to it
        sb = n_short if end else min(n_short, (b - 1) * self.cfg.hop // self.short.hop + 1)
        s0, s1 = self.frame_at(j0), n_short if last else self.frame_at(j1)
        first = int(positions[sa].floor())
        stop = min(self.n_in, int(positions[sb - 1].floor()) + 2)
        spec = spectral.frames(source, self.short, first, stop).to(positions.device)[keep]
        local = positions[sa:sb] - first
        start = None if self.carry is None else self.carry[1][keep][..., sa - self.carry[0]]
        resets = None if self.plan.resets is None else self.plan.resets[sa:sb]
        phase = spectral.propagate_phase(spectral.angle(spec), local, self.short, start, resets)
        self.carry = (sa, phase[inverse])
        k = self.first_bin
        full_mag = spectral.time_scale(spectral.magnitude(spec), local, dim=-1)
        full_mag[..., :k, :] = 0
        full_mag[..., k:, :] *= self.gain(mag, scaled, a, sa, sb) * self.high[k:]
        if n_iter:
            hold = None if held is None else held[sa:sb]
            full = synthesis.griffin_lim(full_mag, phase, self.short, n_iter, length=self.n_out, offset=sa, hold=hold)
        else:
            full = spectral.polar(full_mag, phase)
        return self.output.add(full[inverse][..., s0 - sa : s1 - sa], s0, last=last)


class StreamSum:
    """Streams of consecutive samples, each from sample 0, added: yields what every stream has reached."""

    def __init__(self, streams: int):
        self.pending: list[torch.Tensor | None] = [None] * streams
        self.done = 0  # samples yielded so far

    def add(self, i: int, first: int, samples: torch.Tensor) -> None:
        have = 0 if self.pending[i] is None else self.pending[i].shape[-1]
        assert first == self.done + have, (i, first, self.done, have)
        self.pending[i] = samples if self.pending[i] is None else torch.cat([self.pending[i], samples], dim=-1)

    def take(self) -> tuple[int, torch.Tensor]:
        n = min(0 if p is None else p.shape[-1] for p in self.pending)
        out = sum(p[..., :n] for p in self.pending)
        self.pending = [p[..., n:] for p in self.pending]
        self.done += n
        return self.done - n, out
