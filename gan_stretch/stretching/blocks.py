"""One block of a stretch: the input's frames read along a view of the plan -> complex output frames.

read frames (the caller) -> phase propagated from the input -> magnitudes (the model below its
Nyquist frequency, :mod:`gan_stretch.stretching.magnitudes`) -> Griffin-Lim -> overlap-add (the caller,
:class:`gan_stretch.stretching.streaming.OverlapAdd`). The offline loop (:meth:`gan_stretch.stretching.stretcher.Stretcher._stretch_loop`)
and the real-time stream (:mod:`gan_stretch.stretching.realtime`) both render their blocks here.
"""

from __future__ import annotations

import torch

from gan_stretch.dsp import phase_vocoder, spectrum, synthesis
from gan_stretch.dsp.band import Band
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.stretching.magnitudes import stretch_magnitudes
from gan_stretch.stretching.plan import BlockView
from gan_stretch.stretching.streaming import distinct_channels

SILENT_DB = -200.0  # a loudest bin below this (1e-10) means the input holds only zeros


def render_block(
    stretcher,
    spec: torch.Tensor | list[torch.Tensor],
    view: BlockView,
    start: torch.Tensor | None,
    ref: torch.Tensor,
    rate: torch.Tensor,
    band: Band,
    cfg: SpectralConfig,
    length: int,
    offset: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input's frames ``spec`` [C, F, T] read along ``view`` -> (complex output frames
    [C, F, b - a], the propagated phase before locking [C, F, b - a], which the next block
    continues from). ``start``: the phase the previous block propagated to this block's first
    frame (None: the input's own); ``ref`` [C]: each channel's reference in dB; ``rate`` [C];
    ``length``: the output's length in samples and ``offset``: the block's first output frame
    (Griffin-Lim holds samples beyond the output at zero). ``stretcher`` holds the settings
    (model, residual, phase floor and lock, Griffin-Lim iterations).

    Each of the input's arrays is let go once used (``spec`` may come in a one-item list, which
    is emptied: a caller that keeps no other reference to the frames frees them here): Griffin-Lim, where a block's memory peaks, then runs beside the
    output's frames alone (on a stereo 44.1 kHz block, 107 MB less at the peak)."""
    st = stretcher
    if isinstance(spec, list):  # handed over: the caller's list no longer holds the frames
        spec = spec.pop()
    # identical channels (dual mono, a centred source alone) are stretched once: they stay identical
    keep, inverse = distinct_channels(spec, start)
    if len(keep) < spec.shape[0]:
        spec, start = spec[keep], None if start is None else start[keep]
    source_phase, source_mag = spectrum.angle(spec), spectrum.magnitude(spec)
    del spec
    quiet = None
    if st.phase_floor_db is not None:
        quiet = quiet_bins(source_mag, view.positions, ref[keep] - st.phase_floor_db)
    phase = phase_vocoder.propagate_phase(source_phase, view.positions, cfg, start, view.resets, quiet, view.whole)
    del quiet
    if not st.phase_lock:
        del source_phase
    mag = stretch_magnitudes(st.model, source_mag, view, ref[keep], rate[: len(keep)], band, st.residual)
    del source_mag
    carried = phase[inverse] if len(keep) < len(inverse) else phase
    if st.phase_lock:
        phase = phase_vocoder.lock_phase(phase, mag, source_phase, view.positions)
    if st.griffin_lim:
        full = synthesis.griffin_lim(mag, phase, cfg, st.griffin_lim, length=length, offset=offset, hold=view.held)
    else:
        full = spectrum.polar(mag, phase)
    if len(keep) < len(inverse):
        full = full[inverse]
    return full, carried


def quiet_bins(mag: torch.Tensor, positions: torch.Tensor, floor_db: torch.Tensor) -> torch.Tensor:
    """[C, F, T'] bool: the bins whose phase step at each position (input frames i0 and i0 + 1,
    i0 = floor(position)) reads a frame below ``floor_db`` ([C], dB) in the input's magnitudes
    ``mag`` [C, F, T]."""
    n = mag.shape[-1]
    i0 = positions.to(mag.device).floor().long().clamp(0, n - 1)
    floor = spectrum.db_to_magnitude(floor_db.to(mag.device, torch.float32), 0.0)[:, None, None]
    low = mag < floor  # [C, F, T]
    return low.index_select(-1, i0) | low.index_select(-1, (i0 + 1).clamp_max(n - 1))
