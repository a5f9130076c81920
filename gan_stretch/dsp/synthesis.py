"""From frames back to samples: overlap-add, the nearest consistent spectrogram, and Griffin-Lim
started from a propagated phase (:func:`gan_stretch.dsp.phase_vocoder.propagate_phase`).

torch.istft does what :func:`overlap_add` and :func:`project` do for a whole signal; these work on
any run of frames (a streamed block) and skip istft's centring and envelope checks, which cost
more than the FFTs.
"""

from __future__ import annotations

import torch
from einops import rearrange

from gan_stretch.dsp.spectrum import SpectralConfig, hann, istft, polar, with_magnitude


def overlap_add(spec: torch.Tensor, cfg: SpectralConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed inverse FFT of each frame [..., F, K], overlap-added: (signal [..., L], window
    power [L]) with L = (K - 1) * hop + n_fft; dividing one by the other is torch.istft's result."""
    window = hann(cfg.n_fft, spec.device, spec.real.dtype)
    time = torch.fft.irfft(spec, n=cfg.n_fft, dim=-2).mul_(window[:, None])  # [..., n_fft, K]
    return _fold(time, cfg), _fold((window**2)[:, None].expand(cfg.n_fft, spec.shape[-1]), cfg)


def _fold(time: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """Overlap-add of frames [..., n_fft, K] at ``hop`` -> [..., (K - 1) * hop + n_fft].

    When the hop divides the frame, each frame is cut into n_fft / hop hop-long pieces and the
    pieces are summed with n_fft / hop shifted adds (several times faster than
    torch.nn.functional.fold, which torch.istft also uses); otherwise fold does it."""
    n_fft, hop, k = cfg.n_fft, cfg.hop, time.shape[-1]
    lead = time.shape[:-2]
    if n_fft % hop:
        flat = time.reshape(-1, n_fft, k)
        out = torch.nn.functional.fold(flat, (1, (k - 1) * hop + n_fft), (1, n_fft), stride=(1, hop))
        return out.reshape(*lead, -1)
    r = n_fft // hop
    pieces = rearrange(time, "... (r h) k -> ... r k h", r=r)
    out = time.new_zeros(*lead, k + r - 1, hop)
    for i in range(r):
        out[..., i : i + k, :] += pieces[..., i, :, :]
    return out.reshape(*lead, (k + r - 1) * hop)


def project(spec: torch.Tensor, cfg: SpectralConfig, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """The STFT of the signal that ``spec`` [..., F, K] overlap-adds to (the nearest consistent
    spectrogram), keeping only samples lo..hi-1 of the overlap-added span (zeros elsewhere).

    One Griffin-Lim step done on the frames themselves: irfft, overlap-add, window power, reframe,
    rfft, without torch.istft's centring and envelope checks, which cost more than the FFTs."""
    signal, power = overlap_add(spec, cfg)
    weight = 1 / power.clamp_min(1e-8)  # [L]: one pass over the signal for both
    weight[: max(lo, 0)] = 0
    if hi is not None:
        weight[max(hi, 0) :] = 0
    signal = signal.mul_(weight)
    window = hann(cfg.n_fft, spec.device, spec.real.dtype)
    framed = signal.unfold(-1, cfg.n_fft, cfg.hop) * window  # [..., K, n_fft]
    return rearrange(torch.fft.rfft(framed, dim=-1), "... k f -> ... f k")


def griffin_lim(
    mag: torch.Tensor,
    phase: torch.Tensor,
    cfg: SpectralConfig,
    n_iter: int = 16,
    momentum: float = 0.99,
    length: int | None = None,
    offset: int = 0,
    hold: torch.Tensor | None = None,
) -> torch.Tensor:
    """Magnitudes [..., F, T'] + initial phase -> consistent complex STFT [..., F, T'].

    Fast Griffin-Lim (the update of torchaudio.functional.griffinlim) started from ``phase``;
    torchaudio's version only starts from zero or random phase, and a propagated phase is what
    makes a few iterations enough. The frames are those of a centred STFT, frame ``offset`` + j
    centred on sample (offset + j) * hop of a signal ``length`` samples long (default: up to the
    last frame's centre); samples outside the signal are held at zero. Frames marked in ``hold``
    [T'] (bool) keep ``mag`` and ``phase`` as given: the iterations refine the others around them.
    """
    length = (offset + mag.shape[-1] - 1) * cfg.hop if length is None else length
    lo = cfg.n_fft // 2 - offset * cfg.hop  # the signal's first and last samples, in the frames' span
    hi = lo + length
    spec, previous = polar(mag, phase), None
    held = None if hold is None or not bool(hold.any()) else hold.to(spec.device).nonzero()[:, 0]
    fixed = None if held is None else spec.index_select(-1, held)
    for _ in range(n_iter):
        rebuilt = project(spec, cfg, lo, hi)
        target = rebuilt if previous is None else rebuilt - previous * (momentum / (1 + momentum))
        spec = with_magnitude(mag, target, out=spec)  # the frames just projected are not read again
        if held is not None:
            spec.index_copy_(-1, held, fixed)
        previous = rebuilt
    return spec


def reconstruct(
    mag: torch.Tensor, phase: torch.Tensor, cfg: SpectralConfig, length: int, n_iter: int = 16, momentum: float = 0.99
) -> torch.Tensor:
    """Magnitudes [..., F, T'] + initial phase -> waveform [..., length] (see griffin_lim)."""
    return istft(griffin_lim(mag, phase, cfg, n_iter, momentum, length), cfg, length)
