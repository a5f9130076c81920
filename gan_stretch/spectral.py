"""STFT settings, dB conversion, time positions and phase reconstruction.

Every other module asks :class:`SpectralConfig` for STFT settings; a checkpoint carries one, so a
model always runs with the settings it was trained with.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch

from .errors import RateError

MIN_RATE, MAX_RATE = 0.25, 4.0


@dataclass(frozen=True)
class SpectralConfig:
    sample_rate: int = 22050
    n_fft: int = 2048
    hop: int = 512
    db_range: float = 120.0  # levels below the piece maximum minus this are treated as silence

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpectralConfig":
        return cls(**{k: d[k] for k in ("sample_rate", "n_fft", "hop", "db_range") if k in d})

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples."""
        return n_samples // self.hop + 1


@functools.lru_cache(maxsize=16)
def hann(n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The analysis/synthesis window, made once per size, device and dtype (it is asked for often)."""
    return torch.hann_window(n_fft, device=device, dtype=dtype)


def analyze(wave: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """wave: [..., N] -> complex STFT [..., F, T] (centred, Hann window)."""
    lead = wave.shape[:-1]
    flat = wave.reshape(-1, wave.shape[-1])
    window = hann(cfg.n_fft, wave.device, wave.dtype)
    spec = torch.stft(flat, cfg.n_fft, cfg.hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def synthesize(spec: torch.Tensor, cfg: SpectralConfig, length: int) -> torch.Tensor:
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
    return torch.pow(10.0, (db_rel + ref) / 20.0)


def reference_db(mag: torch.Tensor) -> torch.Tensor:
    """The loudest bin of the whole input (all channels), in dB: one reference keeps channels coherent."""
    return 20.0 * torch.log10(mag.amax().clamp_min(1e-12))


def check_rate(rate: float) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise RateError(f"rate must be a number, got {rate!r}") from None
    if not math.isfinite(rate) or not (MIN_RATE <= rate <= MAX_RATE):
        raise RateError(f"rate must be a finite number in [{MIN_RATE}, {MAX_RATE}], got {rate}")
    return rate


def stretch_positions(n_in: int, n_out: int, rate: float, device=None) -> torch.Tensor:
    """Source frame position of each output frame for a constant rate: [n_out] float.

    Output frame j sits at time j*hop; at speed ``rate`` that is source time rate*j*hop.
    """
    pos = torch.arange(n_out, dtype=torch.float64, device=device) * rate
    return pos.clamp_(0, n_in - 1).float()


def time_scale(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along time. x: [..., T, D], positions: [T'] -> [..., T', D]."""
    n = x.shape[-2]
    positions = positions.to(x.device).clamp(0, n - 1)
    i0 = positions.floor().long().clamp_max(n - 1)
    i1 = (i0 + 1).clamp_max(n - 1)
    frac = (positions - i0.to(positions.dtype)).to(x.dtype).unsqueeze(-1)
    return x.index_select(-2, i0) * (1 - frac) + x.index_select(-2, i1) * frac


def propagate_phase(spec: torch.Tensor, positions: torch.Tensor, cfg: SpectralConfig,
                    start: torch.Tensor | None = None) -> torch.Tensor:
    """Phase-vocoder phase of the input read at arbitrary source positions: [..., F, T'] radians.

    ``start`` [..., F] continues an earlier block's phase (streaming); by default the phase
    starts as the input's at the first position. This is the phase propagation of
    librosa.phase_vocoder / torchaudio.functional.phase_vocoder, written here because both take
    one constant rate, while time maps need arbitrary positions.
    """
    n_freq, n = spec.shape[-2], spec.shape[-1]
    positions = positions.to(spec.device).clamp(0, n - 1)
    omega = 2 * math.pi * cfg.hop * torch.arange(n_freq, device=spec.device, dtype=torch.float64) / cfg.n_fft
    phase_in = torch.angle(spec).double()
    i0 = positions.floor().long().clamp_max(n - 1)
    i1 = (i0 + 1).clamp_max(n - 1)
    dphi = phase_in.index_select(-1, i1) - phase_in.index_select(-1, i0) - omega.unsqueeze(-1)
    dphi = dphi - 2 * math.pi * torch.round(dphi / (2 * math.pi))
    advance = omega.unsqueeze(-1) + dphi  # instantaneous frequency times one hop
    first = phase_in.index_select(-1, i0[:1]) if start is None else start.double().unsqueeze(-1)
    phase = torch.cat([first, first + torch.cumsum(advance[..., :-1], dim=-1)], dim=-1)
    return torch.remainder(phase + math.pi, 2 * math.pi).sub_(math.pi).to(spec.real.dtype)


def frames(wave: torch.Tensor, cfg: SpectralConfig, first: int, stop: int) -> torch.Tensor:
    """Frames first..stop-1 of the centred STFT of the whole ``wave`` [..., N], computed from the
    samples they cover alone (zeros beyond the ends): [..., F, stop - first]."""
    begin = first * cfg.hop - cfg.n_fft // 2
    length = (stop - first - 1) * cfg.hop + cfg.n_fft
    lo, hi = max(begin, 0), min(begin + length, wave.shape[-1])
    if hi > lo:
        seg = torch.nn.functional.pad(wave[..., lo:hi], (lo - begin, begin + length - hi))
    else:
        seg = wave.new_zeros(*wave.shape[:-1], length)
    lead = seg.shape[:-1]
    window = hann(cfg.n_fft, wave.device, wave.dtype)
    spec = torch.stft(seg.reshape(-1, length), cfg.n_fft, cfg.hop, window=window, center=False, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def overlap_add(spec: torch.Tensor, cfg: SpectralConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed inverse FFT of each frame [..., F, K], overlap-added: (signal [..., L], window
    power [L]) with L = (K - 1) * hop + n_fft; dividing one by the other is torch.istft's result."""
    window = hann(cfg.n_fft, spec.device, spec.real.dtype)
    k = spec.shape[-1]
    lead = spec.shape[:-2]
    length = (k - 1) * cfg.hop + cfg.n_fft
    fold = lambda x: torch.nn.functional.fold(x, (1, length), (1, cfg.n_fft), stride=(1, cfg.hop)).reshape(
        *x.shape[:-2], length)
    time = torch.fft.irfft(spec.reshape(-1, *spec.shape[-2:]), n=cfg.n_fft, dim=-2) * window[:, None]
    power = (window ** 2)[None, :, None].expand(1, cfg.n_fft, k)
    return fold(time).reshape(*lead, length), fold(power)[0]


def griffin_lim(mag: torch.Tensor, phase: torch.Tensor, cfg: SpectralConfig, n_iter: int = 16,
                momentum: float = 0.99, length: int | None = None) -> torch.Tensor:
    """Magnitudes [..., F, T'] + initial phase -> consistent complex STFT [..., F, T'].

    Fast Griffin-Lim (the update of torchaudio.functional.griffinlim) started from ``phase``;
    torchaudio's version only starts from zero or random phase, and a propagated phase is what
    makes a few iterations enough. ``length`` is the signal's length in samples (default: up to
    the last frame's centre).
    """
    length = (mag.shape[-1] - 1) * cfg.hop if length is None else length
    angles = torch.polar(torch.ones_like(mag), phase)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = analyze(synthesize(mag * angles, cfg, length), cfg)
        angles = torch.sgn(rebuilt - previous * (momentum / (1 + momentum)))  # unit phasors
        previous = rebuilt
    return mag * angles


def reconstruct(mag: torch.Tensor, phase: torch.Tensor, cfg: SpectralConfig, length: int,
                n_iter: int = 16, momentum: float = 0.99) -> torch.Tensor:
    """Magnitudes [..., F, T'] + initial phase -> waveform [..., length] (see griffin_lim)."""
    return synthesize(griffin_lim(mag, phase, cfg, n_iter, momentum, length), cfg, length)
