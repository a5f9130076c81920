"""STFT settings, the STFT and its inverse, dB conversion and complex arithmetic on frames.

Every other module asks :class:`SpectralConfig` for STFT settings; a checkpoint carries one, so a
model always runs with the settings it was trained with.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch

from gan_stretch.errors import ConfigError
from gan_stretch.settings import check_fields, setting


@dataclass(frozen=True)
class SpectralConfig:
    sample_rate: int = setting(22050, 1000, 10**6)
    n_fft: int = setting(2048, 16, 1 << 18)
    hop: int = setting(512, 1, 1 << 18)
    db_range: float = setting(120.0, 0, 1000, above=True)  # levels below the piece maximum minus this are silence

    def __post_init__(self):
        check_fields(self, "STFT settings")
        if self.hop > self.n_fft:
            raise ConfigError(f"STFT settings: hop ({self.hop}) must not exceed n_fft ({self.n_fft})")

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpectralConfig:
        return cls(**{k: d[k] for k in ("sample_rate", "n_fft", "hop", "db_range") if k in d})

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples."""
        return n_samples // self.hop + 1


@functools.lru_cache(maxsize=16)
def hann(n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The analysis/synthesis window, made once per size, device and dtype (it is asked for often)."""
    return torch.hann_window(n_fft, device=device, dtype=dtype)


def stft(wave: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """wave: [..., N] -> complex STFT [..., F, T] (centred, Hann window)."""
    lead = wave.shape[:-1]
    flat = wave.reshape(-1, wave.shape[-1])
    window = hann(cfg.n_fft, wave.device, wave.dtype)
    spec = torch.stft(flat, cfg.n_fft, cfg.hop, window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: SpectralConfig, length: int) -> torch.Tensor:
    """complex STFT [..., F, T] -> wave [..., length]."""
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:])
    window = hann(cfg.n_fft, spec.device, spec.real.dtype)
    wave = torch.istft(flat, cfg.n_fft, cfg.hop, window=window, center=True, length=length)
    return wave.reshape(*lead, length)


def magnitude_to_db(mag: torch.Tensor, ref_db: torch.Tensor | float, cfg: SpectralConfig) -> torch.Tensor:
    """|STFT| -> dB relative to ``ref_db`` (the piece maximum), clipped to [-db_range, 0]."""
    db = 20.0 * torch.log10(mag.clamp_min(1e-12))
    ref = torch.as_tensor(ref_db, dtype=db.dtype, device=db.device)
    while ref.dim() < db.dim():
        ref = ref.unsqueeze(-1)
    return (db - ref).clamp(-cfg.db_range, 0.0)


def db_to_magnitude(db_rel: torch.Tensor, ref_db: torch.Tensor | float) -> torch.Tensor:
    ref = torch.as_tensor(ref_db, dtype=db_rel.dtype, device=db_rel.device)
    while ref.dim() < db_rel.dim():
        ref = ref.unsqueeze(-1)
    return torch.exp((db_rel + ref) * (math.log(10) / 20))  # 10 ** (dB / 20); exp is 2x faster than pow on CPU


# Complex element-wise ops are several times slower on CPU than the same arithmetic on the real
# and imaginary planes, and hypot / atan2 lose their vector loops on the planes' stride-2 views
# (measured on [2, 2049, 1090] frames, one thread: abs 36 ms, hypot of the views 17 ms, the
# products below 6.6 ms; angle 43 ms, atan2 of contiguous planes 12 ms with the copies; polar
# 30 ms vs 9.5 ms; mag * sgn(z) 58 ms vs 14 ms). The block loop calls each on every frame.
def power(spec: torch.Tensor) -> torch.Tensor:
    """|spec| ** 2 of a complex tensor (in its layout)."""
    re, im = spec.real, spec.imag
    return (re * re).addcmul_(im, im)


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """|spec| of a complex tensor (in its layout)."""
    return power(spec).sqrt_()


def _frames_major(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` [..., F, T] as a row-major view: (view, transposed). An STFT's layout keeps each
    frame's bins contiguous, so its transpose [..., T, F] is the row-major one."""
    if x.dim() > 1 and x.stride(-2) == 1 and x.stride(-1) != 1:
        return x.transpose(-1, -2), True
    return x, False


def angle(spec: torch.Tensor) -> torch.Tensor:
    """The phase of a complex tensor, in its layout (torch.angle returns a row-major tensor: on
    an STFT's layout, frames gathered from it later read 2049 strided values each, 10x slower)."""
    rows, transposed = _frames_major(spec)
    phase = torch.atan2(rows.imag.contiguous(), rows.real.contiguous())
    return phase.transpose(-1, -2) if transposed else phase


def polar(mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """mag * exp(i phase), as torch.polar."""
    out = torch.empty_like(mag, dtype=mag.dtype.to_complex())
    planes = torch.view_as_real(out)
    torch.mul(mag, torch.cos(phase), out=planes[..., 0])
    torch.mul(mag, torch.sin(phase), out=planes[..., 1])
    return out


def with_magnitude(mag: torch.Tensor, spec: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """mag * sgn(spec): ``spec``'s phase with the magnitudes ``mag`` (zero where spec is zero),
    written into ``out`` (a complex tensor of spec's shape, not ``spec``) when given."""
    re, im = spec.real, spec.imag
    scale = mag * power(spec).clamp_min_(torch.finfo(mag.dtype).tiny).rsqrt_()
    out = torch.empty_like(spec) if out is None else out
    planes = torch.view_as_real(out)
    torch.mul(re, scale, out=planes[..., 0])
    torch.mul(im, scale, out=planes[..., 1])
    return out


def reference_db(mag: torch.Tensor) -> torch.Tensor:
    """The loudest bin of the whole input (all channels), in dB: one reference keeps channels coherent."""
    return 20.0 * torch.log10(mag.amax().clamp_min(1e-12))


def segment(wave, cfg: SpectralConfig, first: int, stop: int) -> torch.Tensor:
    """The samples frames first..stop-1 of a centred STFT cover (zeros beyond the ends): [..., L],
    starting at sample first * hop - n_fft / 2.

    ``wave`` is a tensor or anything with ``read(lo, hi)`` returning samples lo..hi-1 as a tensor
    [..., hi - lo] zero-padded outside the signal (a file read in blocks).
    """
    begin = first * cfg.hop - cfg.n_fft // 2
    length = (stop - first - 1) * cfg.hop + cfg.n_fft
    return (
        read_padded(wave, begin, begin + length) if isinstance(wave, torch.Tensor) else wave.read(begin, begin + length)
    )


def frames(wave, cfg: SpectralConfig, first: int, stop: int, seg: torch.Tensor | None = None) -> torch.Tensor:
    """Frames first..stop-1 of the centred STFT of the whole ``wave`` [..., N], computed from the
    samples they cover alone (zeros beyond the ends): [..., F, stop - first]. ``seg``: those
    samples, when already read (:func:`segment`)."""
    seg = segment(wave, cfg, first, stop) if seg is None else seg
    lead, length = seg.shape[:-1], seg.shape[-1]
    window = hann(cfg.n_fft, seg.device, seg.dtype)
    spec = torch.stft(seg.reshape(-1, length), cfg.n_fft, cfg.hop, window=window, center=False, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def read_padded(wave: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Samples lo..hi-1 of ``wave`` [..., N], zeros outside 0..N-1."""
    a, b = max(lo, 0), min(hi, wave.shape[-1])
    if b <= a:
        return wave.new_zeros(*wave.shape[:-1], hi - lo)
    return torch.nn.functional.pad(wave[..., a:b], (a - lo, hi - b))
