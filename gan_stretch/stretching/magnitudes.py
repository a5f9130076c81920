"""The model's part of a block: the input's magnitudes to stretched magnitudes.

Below the model's Nyquist frequency the input's dB frames go through the model (encode,
time-scale, refine, decode); above it the input's magnitudes are time-scaled as a phase vocoder
would. Levels: each channel is measured against its own loudest bin, and the input's level is
kept where it is steady.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

from gan_stretch.dsp import decays, spectrum, timemap
from gan_stretch.dsp.band import Band
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.models.model_file import Model
from gan_stretch.stretching.plan import BlockView


def stretch_magnitudes(
    model: Model, mag: torch.Tensor, view: BlockView, ref: torch.Tensor, rate: torch.Tensor, band: Band, residual: bool
) -> torch.Tensor:
    """Input magnitudes [C, F, T] -> stretched magnitudes [C, F, T'] (the model below its Nyquist
    frequency, the time-scaled input above it), along one block's ``view`` of the plan: its
    positions [T'] (source frame of each output frame); attacks [T'] (frames that play an attack
    at speed 1 keep the input's own frames under residual decoding); change [T', M] (level change
    in dB per band of gan_stretch.dsp.decays.band_centres); features [T', K] (per-frame features
    for a refiner that takes them, see :func:`stretch_frames`); fade [T'] (weight of the model's
    change under residual decoding: 1 all of it, 0 none, the time-scaled input); each may be None.
    ref: [C] each channel's reference in dB; rate: [C]."""
    positions, attacks, change, features, fade = view.positions, view.attacks, view.change, view.features, view.fade
    frames = rearrange(spectrum.magnitude_to_db(band.low(mag), ref, model.spectral), "c f t -> c t f")
    out = stretch_frames(model, frames, positions, rate, residual, attacks, features, fade)  # [C, T', F] dB
    if change is not None:
        centres = decays.band_centres(model.spectral, band.cfg.sample_rate)
        shift = decays.to_bins_tensor(change, model.spectral, centres, device=out.device)
        out = (out + shift).clamp(-model.spectral.db_range, 0)
    low = spectrum.db_to_magnitude(rearrange(out, "c t f -> c f t"), ref)
    if band.full:
        return band.from_model(low)
    high = timemap.time_scale(mag[..., band.first_high :, :], positions, dim=-1)
    if change is not None:  # the input's bins above the model's band follow their own bands' decays
        gain = decays.to_bins_tensor(change, band.cfg, centres, band.first_high, high.device)
        high = high * spectrum.db_to_magnitude(gain.T, 0.0)
    return band.combine(low, high)


def stretch_frames(
    model: Model,
    frames: torch.Tensor,
    positions: torch.Tensor,
    rate: torch.Tensor,
    residual: bool,
    attacks: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    fade: torch.Tensor | None = None,
) -> torch.Tensor:
    """dB frames [B, T, F] -> stretched dB frames [B, T', F] (encode, time-scale, refine, decode).
    ``fade`` [T']: the share of the refiner's change kept under residual decoding (None: all).
    A refiner conditioned per frame gets ``features`` [T', K]
    (:func:`gan_stretch.dsp.timemap.frame_features` of the whole plan, sliced to these frames; None:
    computed from ``positions`` and ``attacks``, exact when they are the whole plan).
    Under residual decoding, frames marked in ``attacks`` [T'] keep the input's frames: a
    performance at another tempo plays its attacks as they are, so the refiner only shapes what
    is stretched (measured on held-out renders of two unseen sound banks, rates 0.75 / 2: attacks
    -1.2 / -1.5 dB against the truth with the refiner's change there, -0.4 / -0.25 dB without; log-mel
    the same or lower)."""
    ae = model.autoencoder
    scaled = timemap.time_scale(ae.encode(frames), positions)
    if model.refiner is None:
        refined = scaled
    elif model.frame_features:
        if features is None:
            features = timemap.frame_features(positions, attacks)
        refined = model.refiner(scaled, rate, features.to(scaled.device).expand(scaled.shape[0], -1, -1))
    else:
        refined = model.refiner(scaled, rate)
    scaled_frames = timemap.time_scale(frames, positions)
    if not residual:
        out = ae.decode(refined)
    else:
        # the refiner's change, decoded, applied to the time-scaled input frames: the
        # autoencoder's own reconstruction error (the same in both decodes) cancels out
        if attacks is None or not bool(attacks.any()):
            delta = ae.decode(refined) - ae.decode(scaled)
        else:  # attack frames keep the input's: only the others are decoded
            stretched = (~attacks.to(frames.device)).nonzero()[:, 0]
            delta = torch.zeros_like(scaled_frames)
            changed = ae.decode(refined[:, stretched])
            delta.index_copy_(1, stretched, changed.sub_(ae.decode(scaled[:, stretched])))
        if fade is not None:
            delta = delta.mul_(fade.to(delta.device, delta.dtype)[None, :, None])
        out = delta.add_(scaled_frames).clamp_(-ae.cfg.db_range, 0)  # in place: a + b is b + a to the bit
    return steady_level(out, frames, positions, ae.cfg.db_range, scaled_frames)


def channel_reference_db(peak: torch.Tensor, cfg: SpectralConfig) -> torch.Tensor:
    """The loudest model-band bin of each channel over the whole input (``peak``, [C] magnitudes),
    in dB: [C].

    Each channel is measured against its own maximum, so a source panned to -12 dB reaches the
    model exactly as it would centred and the model's change is the same in both channels: the
    level difference between channels passes through unchanged (one reference shared by all
    channels made the quieter channel's change differ and narrowed the stereo image, -12 dB to
    -9.6 dB at rate 2). A channel more than ``db_range`` below the loudest is silence and keeps
    the loudest one's reference.
    """
    db = 20.0 * torch.log10(peak.clamp_min(1e-12))
    return torch.maximum(db, db.max() - cfg.db_range)


# frame-to-frame level change (dB) below which the input counts as steady; measured on held-out
# renders (eval/benchmark.py, 4 pieces): OPL-3 FM log-mel 3.19 -> 3.09 dB, TimGM6mb 3.86 -> 3.86;
# 0.5 dB also corrects decays whose level the refiner gets right (TimGM6mb: 4.03)
STEADY_DB = 0.25


def steady_level(
    out: torch.Tensor,
    frames: torch.Tensor,
    positions: torch.Tensor,
    db_range: float,
    scaled: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stretched dB frames [B, T', F] with the level of the input kept where the input is steady.

    Where the input's level does not change from frame to frame (a held note, a drone), the
    truly stretched signal has the input's level at any rate; the refiner, trained on music whose
    notes decay in real time (slower tempo: more decay between notes, a lower level), shifts the
    level by rate regardless (a steady tone: -3 dB at rate 0.25, +1.2 dB at rate 4). Each output
    frame's energy change is removed in proportion to how steady the input is around its source
    position: fully where its level does not change from frame to frame, not at all where it
    changes by ``STEADY_DB`` or more; decays and onsets keep the refiner's level.
    out: stretched dB frames [B, T', F]; frames: the input's dB frames [B, T, F]; positions [T'];
    scaled: ``time_scale(frames, positions)`` when already computed.
    """
    level = power_db(frames)  # [B, T]
    # |level change| across each boundary between input frames (none before the first or after
    # the last), then the largest within one frame of each boundary
    change = torch.nn.functional.pad((level[:, 1:] - level[:, :-1]).abs(), (1, 1))  # [B, T + 1]
    local = torch.nn.functional.max_pool1d(change[:, None], 3, 1, 1)[:, 0]
    i0 = positions.floor().long().clamp(0, frames.shape[1] - 1)  # output frame j lies between i0 and i0 + 1
    gate = (1 - torch.maximum(local[:, i0], local[:, i0 + 1]) / STEADY_DB).clamp(0, 1)  # [B, T']
    scaled = timemap.time_scale(frames, positions) if scaled is None else scaled
    excess = power_db(out) - power_db(scaled)  # [B, T']
    return (out - (gate * excess)[..., None]).clamp(-db_range, 0)


def power_db(frames: torch.Tensor) -> torch.Tensor:
    """dB frames [..., F] -> each frame's total power in dB [...]."""
    return torch.logsumexp(frames * (math.log(10) / 10), dim=-1) * (10 / math.log(10))
