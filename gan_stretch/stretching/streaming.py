"""Pieces of the streamed block loop (:meth:`gan_stretch.stretching.stretcher.Stretcher._blocks`).

One pass over the input first (:func:`analysis_pass`: each channel's loudness reference, attacks);
then the output is overlap-added block by block (:class:`OverlapAdd` holds what is not final
yet), identical channels are found once per block and stretched once, and an identity time map
passes the input through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan_stretch.dsp import decays, onset_detection, spectrum, synthesis
from gan_stretch.dsp.band import Band
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import AudioError
from gan_stretch.stretching.magnitudes import channel_reference_db
from gan_stretch.stretching.sources import Source


class OverlapAdd:
    """The streamed output of the block loop: frames overlap-added block by block.

    A block's samples are final up to its last frame's start (no later frame reaches them); the
    rest (``pending``, with its window power ``weight``) waits to be added to the next block's.
    """

    def __init__(self, cfg: SpectralConfig, n_out: int):
        self.cfg, self.n_out = cfg, n_out
        self.pending: torch.Tensor | None = None  # [C, L] overlap-added samples not final yet
        self.weight: torch.Tensor | None = None  # [L] their window power so far

    def add(self, frames: torch.Tensor, j0: int, last: bool) -> tuple[int, torch.Tensor]:
        """Complex output frames j0.. ([C, F, K]) -> (first output sample, the samples now final
        [C, k]); ``last``: no block follows, every remaining sample up to ``n_out`` is final."""
        cfg = self.cfg
        signal, power = synthesis.overlap_add(frames, cfg)  # from sample j0 * hop - n_fft / 2
        if self.pending is not None:
            signal[..., : self.pending.shape[-1]] += self.pending
            power[: self.weight.shape[-1]] += self.weight
        done = signal.shape[-1] if last else frames.shape[-1] * cfg.hop  # later frames start there
        lo = j0 * cfg.hop - cfg.n_fft // 2
        hi = min(lo + done, self.n_out)
        out = signal[..., max(0, -lo) : hi - lo] / power[max(0, -lo) : hi - lo].clamp_min(1e-8)
        # copies: views would keep this block's whole signal alive through the next block
        self.pending, self.weight = signal[..., done:].clone(), power[done:].clone()
        return max(lo, 0), out


def passthrough(source: Source, n: int, step: int):
    """Yields (first sample, audio [C, k]) of the input itself, ``step`` samples at a time.

    An identity time map (rate 1) asks for the input unchanged: a true-tempo render at tempo 1
    is the input, and a refiner trained on other rates is not an identity (the default model
    at rate 1: 17 dB SNR on music), so the input is returned exactly. A silent input fails as
    it does at any other rate."""
    heard = False
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        chunk = source.read(lo, hi)
        heard = heard or bool(chunk.abs().amax() > 1e-10)
        yield lo, chunk
    if not heard:
        raise AudioError(f"{source.name} is silent (every sample is zero)")


def distinct_channels(*tensors: torch.Tensor | None) -> tuple[list[int], list[int]]:
    """Channels (first axis) that differ in any of ``tensors``: (kept channel indices, for every
    channel the position of its kept twin)."""
    tensors = [t for t in tensors if t is not None]
    channels = tensors[0].shape[0]
    if channels == 1:
        return [0], [0]

    # one transfer of per-channel sums over a sparse sample of each tensor; exact comparisons only
    # where those agree
    def fingerprint(t: torch.Tensor) -> torch.Tensor:
        t = t[(slice(None),) + (slice(None, None, 7),) * (t.dim() - 1)]  # a sparse view, no copy
        dims = tuple(range(1, t.dim()))
        if t.is_complex():
            return t.real.sum(dim=dims, dtype=torch.float64) + 2 * t.imag.sum(dim=dims, dtype=torch.float64)
        return t.sum(dim=dims, dtype=torch.float64)

    sums = torch.stack([fingerprint(t) for t in tensors], dim=1).tolist()
    keep, inverse = [], []
    for c in range(channels):
        twin = next(
            (i for i, k in enumerate(keep) if sums[c] == sums[k] and all(torch.equal(t[c], t[k]) for t in tensors)),
            None,
        )
        if twin is None:
            keep.append(c)
            twin = len(keep) - 1
        inverse.append(twin)
    return keep, inverse


# the analysis pass keeps the STFT of audio in memory for the block loop when it takes at most
# this much (3 minutes of stereo 44.1 kHz: 254 MB); longer inputs and files compute each block's
# frames again
KEEP_FRAMES_BYTES = 512 * 2**20


def frame_store(channels: int, cfg: SpectralConfig, n_in: int, device) -> torch.Tensor | None:
    """An empty complex STFT [C, F, n_in] in the STFT's layout (bins contiguous) for
    :func:`analysis_pass` to fill, or None when it would exceed ``KEEP_FRAMES_BYTES``."""
    if channels * cfg.n_freq * n_in * 8 > KEEP_FRAMES_BYTES:
        return None
    return torch.empty(channels, n_in, cfg.n_freq, dtype=torch.complex64, device=device).transpose(-1, -2)


@dataclass
class Analysis:
    """What one pass over the input finds (:func:`analysis_pass`)."""

    ref_db: torch.Tensor  # [C] each channel's loudest model-band bin (dB): the model's level reference
    onsets: np.ndarray  # input samples where attacks start, all channels together (empty without transients)
    levels_db: np.ndarray | None  # [T, M] the input's band levels in dB (None without transients)


def analysis_pass(
    source: Source,
    cfg: SpectralConfig,
    model: SpectralConfig,
    band: Band,
    n_in: int,
    block: int,
    transients: bool,
    store: torch.Tensor | None = None,
) -> Analysis:
    """One pass over the input in blocks of ``block`` frames of ``cfg``: the loudest model-band bin of each channel in dB ([C], see
    :func:`~gan_stretch.stretching.magnitudes.channel_reference_db`) and, with ``transients``, the input
    samples where attacks start (all channels together, so the channels keep their timing) and
    the input's levels in dB [T, M] in the bands of :func:`gan_stretch.dsp.decays.band_centres` (the
    model's 40 mel bands, then those above the model's Nyquist frequency; None without transients).
    Attacks are found in the model's bands. ``store`` (:func:`frame_store`) receives the frames,
    which the block loop then reads instead of computing them a second time."""
    peak = None
    fb = onset_detection.mel_filters(model, band.device) if transients else None
    high = decays.high_filters(model, cfg) if transients and not band.full else None
    if high is not None:  # the input's own bins above the model's band
        lo = int(np.flatnonzero(high.sum(axis=1))[0])
        high = torch.from_numpy(high[lo:]).to(band.device)
    if fb is not None:
        # the whole input's band powers and attack envelope, allocated once before the blocks: kept
        # pieces allocated block by block between the blocks' large temporaries fragmented the heap
        # (a 10-minute stereo 44.1 kHz file's peak grew by 260 MB over the pass)
        bands = torch.empty(n_in, fb.shape[1] + (0 if high is None else high.shape[1]), device=band.device)
        envelope = torch.empty(n_in * onset_detection.ENVELOPE_BLOCKS, dtype=torch.float64, device=band.device)
    for s in range(0, n_in, block):
        e = min(s + block, n_in)
        seg = spectrum.segment(source, cfg, s, e)
        spec = spectrum.frames(source, cfg, s, e, seg)
        if store is not None:
            store[..., s:e] = spec
        power = band.low_power(spec)  # [C, F, T]
        m = power.amax(dim=(-2, -1))
        peak = m if peak is None else torch.maximum(peak, m)
        if fb is not None:
            bands[s:e, : fb.shape[1]] = torch.einsum("cft,fm->tm", power.float(), fb)
            if high is not None:
                top = spectrum.power(spec[..., lo : lo + len(high), :]).float()
                bands[s:e, fb.shape[1] :] = torch.einsum("cft,fm->tm", top, high)
                del top
            envelope[s * onset_detection.ENVELOPE_BLOCKS : e * onset_detection.ENVELOPE_BLOCKS] = (
                onset_detection.attack_envelope(seg, cfg, s, e)
            )
        # this block's frames go before the next block's are computed (not kept beside them)
        del seg, spec, power
    onsets, mel_db = np.zeros(0, dtype=np.int64), None
    if fb is not None:
        # each whole-input array is let go as soon as it is used
        mel_power = bands.cpu().numpy().astype(np.float64)
        del bands
        found = onset_detection.detect_onsets(mel_power[:, : onset_detection.MEL_BANDS], cfg)
        onsets = onset_detection.refine_onsets(found, envelope.cpu().numpy(), cfg)
        del envelope, found
        mel_db = decays.levels_db(mel_power)
    return Analysis(channel_reference_db(peak.sqrt(), cfg), onsets, mel_db)


def direct_current(source: Source, step: int) -> torch.Tensor:
    """Each channel's mean (its DC offset) over the whole input, read ``step`` samples at a time
    where it is streamed: [C] float64 (on the CPU for an MPS source)."""
    return source.channel_sums(step) / source.shape[-1]
