"""What the block loop reads: a :class:`Source`, audio [C, N] any part of which can be asked for.

Two kinds: :class:`InMemory` (a tensor; the analysis pass keeps its STFT for the blocks) and
:class:`Streamed` (a file reader; read again block by block, so memory stays that of one block at
any length). The Stretcher wraps its input in one of them once; the loop asks the source instead
of asking what it is.
"""

from __future__ import annotations

from typing import Protocol

import torch

from gan_stretch.dsp.spectrum import read_padded


class Source(Protocol):
    name: str
    shape: tuple[int, int]  # (channels, samples)
    device: torch.device  # where its samples come out
    in_memory: bool  # True: all of it is in memory, so the STFT of the whole can be kept

    def read(self, lo: int, hi: int) -> torch.Tensor:
        """Samples lo..hi-1 [C, hi - lo], zeros outside 0..N-1."""

    def channel_sums(self, step: int) -> torch.Tensor:
        """Each channel's sum over the whole input, in float64 [C] (on the CPU for MPS)."""

    def less(self, dc: torch.Tensor) -> Source:
        """The same audio less each channel's offset ``dc`` [C] (zeros beyond the ends stay zeros)."""


def _sum64(x: torch.Tensor) -> torch.Tensor:  # float64 sums (MPS has no float64: there on the CPU)
    return (x.cpu() if x.device.type == "mps" else x).sum(-1, dtype=torch.float64)


class InMemory:
    """A tensor [C, N] as a :class:`Source`."""

    in_memory = True

    def __init__(self, wave: torch.Tensor, name: str = "input audio"):
        self.wave, self.name, self.shape, self.device = wave, name, tuple(wave.shape), wave.device

    def read(self, lo: int, hi: int) -> torch.Tensor:
        return read_padded(self.wave, lo, hi)

    def channel_sums(self, step: int) -> torch.Tensor:
        return _sum64(self.wave)

    def less(self, dc: torch.Tensor) -> InMemory:
        return InMemory(self.wave - dc.to(self.wave.device, self.wave.dtype)[:, None], self.name)


class Streamed:
    """A file reader (``read(lo, hi)`` as :class:`~gan_stretch.io.audio.AudioReader` reads) as a
    :class:`Source` whose samples go to ``device``; ``dc`` [C]: an offset taken off every sample."""

    in_memory = False

    def __init__(self, reader, device: torch.device, dc: torch.Tensor | None = None):
        self.reader, self.device, self.dc = reader, device, None if dc is None else dc.float()
        self.name, self.shape = getattr(reader, "name", "input audio"), tuple(reader.shape)

    def read(self, lo: int, hi: int) -> torch.Tensor:
        out = self.reader.read(lo, hi)
        a, b = max(lo, 0), min(hi, self.shape[-1])
        if self.dc is not None and b > a:
            out[:, a - lo : b - lo] -= self.dc.to(out.device)[:, None]
        return out

    def channel_sums(self, step: int) -> torch.Tensor:
        n, total = self.shape[-1], None
        for lo in range(0, n, step):
            part = _sum64(self.read(lo, min(lo + step, n)))
            total = part if total is None else total + part
        return total

    def less(self, dc: torch.Tensor) -> Streamed:
        return Streamed(self.reader, self.device, dc if self.dc is None else self.dc + dc)
