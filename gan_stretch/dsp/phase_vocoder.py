"""Phase-vocoder phase: propagation to arbitrary source positions and identity phase locking."""

from __future__ import annotations

import math

import torch

from gan_stretch.dsp.spectrum import SpectralConfig, angle


def propagate_phase(
    spec: torch.Tensor,
    positions: torch.Tensor,
    cfg: SpectralConfig,
    start: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    quiet: torch.Tensor | None = None,
    whole: torch.Tensor | None = None,
) -> torch.Tensor:
    """Phase-vocoder phase of the input read at arbitrary source positions: [..., F, T'] radians.

    ``spec`` is the input's complex STFT [..., F, T], or its phase (real).
    ``start`` [..., F] continues an earlier block's phase (streaming); by default the phase
    starts as the input's at the first position. This is the phase propagation of
    librosa.phase_vocoder / torchaudio.functional.phase_vocoder, written here because both take
    one constant rate, while time maps need arbitrary positions. Each frame's advance is wrapped
    to [-pi, pi) before the running sum, so float32 keeps the phase to about 1e-3 rad.
    ``reset`` [T'] bool marks output frames whose phase restarts as the input's at their
    position (a phase reset at transients: the bins of an attack stay aligned as in the input,
    instead of the propagated phases that spread it over the whole window).
    ``quiet`` [..., F, T'] bool marks single bins that restart the same way: bins where the input
    is too quiet for its phase to mean anything (digital silence, the FFT's rounding). Their phase
    would otherwise carry that noise, which differs between CPU and GPU FFTs, into every later
    frame of the bin, so a partial that starts after a quiet stretch would start with random
    offsets between its bins; restarted, it continues from the input's phase where it sounds.
    ``whole`` [T'] bool marks output frames that read whole input frames at a rate near 1
    (:func:`_whole_steps`: where the frame read repeats or skips one, only steady partials advance).
    """
    n_freq, n = spec.shape[-2], spec.shape[-1]
    positions = positions.to(spec.device).clamp(0, n - 1)
    omega = 2 * math.pi * cfg.hop * torch.arange(n_freq, device=spec.device, dtype=torch.float64) / cfg.n_fft
    phase_in = (angle(spec) if spec.is_complex() else spec).transpose(-1, -2)  # [..., T, F]: frames whole
    omega = wrap(omega).to(phase_in.dtype)
    i0 = positions.floor().long().clamp_max(n - 1)
    # instantaneous frequency times one hop, modulo 2 pi (omega + wrap(dphi - omega) == dphi mod 2 pi),
    # read only at the frames the positions use (row 0 reads i0[0] twice: no advance before the
    # first output frame); past the last frame, the bin's centre frequency
    prev = torch.cat([i0[:1], i0[:-1]])
    following = torch.cat([i0[:1], (i0[:-1] + 1).clamp_max(n - 1)])
    step = phase_in.index_select(-2, following) - phase_in.index_select(-2, prev)
    past = (prev[1:] == n - 1).nonzero()[:, 0] + 1  # rows after the first that read past the last frame
    if len(past):
        step[..., past, :] = omega
    if whole is not None and bool(whole.any()):
        step = _whole_steps(phase_in, i0, prev, step, whole.to(spec.device))
    total = torch.cumsum(wrap(step), dim=-2)  # [..., T', F], row 0 is zero
    first = phase_in.index_select(-2, i0[:1]) if start is None else start.unsqueeze(-2)
    if quiet is not None and bool(quiet.any()):
        return _restart_bins(phase_in, i0, total, first, quiet.transpose(-1, -2), reset)
    if reset is None or not bool(reset.any()):
        return wrap(first + total).transpose(-1, -2)
    # frame j continues from the last reset frame r <= j: phase_in[i0[r]] + (total[j] - total[r])
    reset = reset.to(spec.device).clone()
    last = torch.where(reset, torch.arange(len(reset), device=spec.device), 0).cummax(0).values
    origin = phase_in.index_select(-2, i0[last])  # the input's phase at that reset frame's position
    base = torch.where(reset[last][:, None], origin - total.index_select(-2, last), first)
    return wrap(base + total).transpose(-1, -2)


# a bin whose phase advance over the two hops before a repeated or skipped frame agrees within this
# many radians is a steady partial (a stable frequency); measured on white noise and decaying
# harmonic notes at rates 0.97 to 1.03 (tests/stretching/test_music_edges.py): 0.3 rad took 10 % of noise
# bins for partials and lost 0.36 dB of noise at rate 0.97, 0.1 rad 0.18 dB, 0.05 rad under 0.1 dB
STABLE_ADVANCE = 0.05


def _whole_steps(phase_in, i0, prev, step, whole):
    """Phase steps of the rows of ``whole`` (frames read whole at a rate near 1) where the frame
    read does not advance by one (a repeat, or a skip): a steady partial advances by its own
    one-hop advance per hop of output (the phase vocoder), any other bin (noise, the stochastic
    part) keeps the frame's phase as in the input, as a splice of the input shifted by a hop would:
    the frames on both sides of the splice stay consistent, where one-hop advances of noise bins
    (random across bins) would scramble every frame after it (-0.5 dB on noise at rate 0.97)."""
    n = phase_in.shape[-2]
    di = i0 - prev  # [T'] input frames advanced at each output frame
    odd = (whole & (di != 1)).nonzero()[:, 0]
    odd = odd[odd > 0]
    if not len(odd):
        return step
    a, b = prev[odd], i0[odd]
    adv = wrap(phase_in.index_select(-2, (a + 1).clamp_max(n - 1)) - phase_in.index_select(-2, a))
    back = wrap(phase_in.index_select(-2, a) - phase_in.index_select(-2, (a - 1).clamp_min(0)))
    steady = wrap(adv - back).abs() < STABLE_ADVANCE
    per_hop = torch.where(steady, adv, torch.zeros_like(adv))
    step = step.clone()
    step[..., odd, :] = (
        phase_in.index_select(-2, b) - phase_in.index_select(-2, a) - per_hop * (di[odd] - 1).to(step.dtype)[:, None]
    )
    return step


def _restart_bins(
    phase_in: torch.Tensor, i0: torch.Tensor, total: torch.Tensor, first: torch.Tensor, quiet: torch.Tensor, reset
) -> torch.Tensor:
    """:func:`propagate_phase` with restarts per bin: ``quiet`` [..., T', F] (and every bin of the
    ``reset`` frames). Bin f of frame j continues from its last restart r <= j:
    phase_in[i0[r], f] + (total[j, f] - total[r, f]); before any restart, from ``first``."""
    restart = quiet if reset is None else quiet | reset.to(quiet.device)[:, None]
    restart = restart.expand(total.shape)
    frames = torch.arange(total.shape[-2], device=total.device)[:, None]
    last = torch.where(restart, frames, 0).cummax(-2).values  # [..., T', F] the last restart so far
    origin = phase_in.gather(-2, i0[last])  # the input's phase there, per bin
    base = torch.where(restart.gather(-2, last), origin - total.gather(-2, last), first)
    return wrap(base + total).transpose(-1, -2)


def wrap(phase: torch.Tensor) -> torch.Tensor:
    """Angles to [-pi, pi)."""
    # in place on the sum: the same values as torch.remainder(phase + pi, 2 pi) - pi, with one
    # temporary instead of three (on [2, 1100, 2049] frames, one thread: 7.7 ms vs 8.4 ms)
    return (phase + math.pi).remainder_(2 * math.pi).sub_(math.pi)


def lock_phase(
    phase: torch.Tensor, mag: torch.Tensor, source_phase: torch.Tensor, positions: torch.Tensor, radius: int = 2
) -> torch.Tensor:
    """Identity phase locking (Laroche and Dolson): every bin keeps, relative to the strongest bin
    within ``radius`` bins of it (the peak of its partial: a Hann window's main lobe is 2 bins
    wide), the phase offset it has in the input frame it is read from, so the bins of one partial
    stay coherent instead of drifting apart ("phasiness").

    phase, mag: [..., F, T'] (propagated phase, output magnitudes); source_phase: the input's
    phase [..., F, T]; positions [T'] into it. No library implements locking for arbitrary
    positions; a max-pool finds the peaks, and the peaks' own phases come from
    :func:`propagate_phase`, which keeps this one vectorised pass.
    """
    n_freq, n_out = mag.shape[-2:]
    frames = mag.transpose(-1, -2).reshape(-1, 1, n_out, n_freq)  # [..., T', F]: no copy in the STFT layout
    _, where = torch.nn.functional.max_pool2d(frames, (1, 2 * radius + 1), 1, (0, radius), return_indices=True)
    rows = torch.arange(0, n_out * n_freq, n_freq, device=mag.device)[:, None]
    peak = (where.reshape(-1, n_out, n_freq) - rows).reshape(*mag.shape[:-2], n_out, n_freq)  # flat (t, f) -> f
    nearest = (positions.to(mag.device) + 0.5).floor().long().clamp(0, source_phase.shape[-1] - 1)
    src = source_phase.transpose(-1, -2).index_select(-2, nearest)
    phase = phase.transpose(-1, -2)
    return wrap(phase.gather(-1, peak) + src - src.gather(-1, peak)).transpose(-1, -2)
