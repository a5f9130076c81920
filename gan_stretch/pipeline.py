"""Stretcher: a checkpoint turned into ``stretch(audio, sr, rate)``.

audio [C, N] -> STFT [C, F, T] -> dB frames -> latents [C, T, L] (frozen autoencoder)
  -> time-scaled to T' frames -> refined (mapper or generator) -> decoded dB [C, T', F]
  -> magnitudes + phase propagated from the input -> Griffin-Lim refinement -> audio [C, N / rate]
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from einops import rearrange

from . import spectral, timemap
from .audio import AudioReader, AudioWriter, check_output_path, validate
from .band import Band, input_config
from .errors import AudioError, ConfigError
from .model import DEFAULT_CHECKPOINT, Model, load_model, model_meta, resolve_checkpoint, save_model
from .spectral import MAX_RATE, MIN_RATE, SpectralConfig

# the names users and scripts import from here, wherever they live now
__all__ = ["Stretcher", "stretch", "load_model", "save_model", "model_meta", "Model", "resolve_checkpoint",
           "DEFAULT_CHECKPOINT", "Band", "check_sample_rate", "check_device"]
SILENT_DB = -200.0  # a loudest bin below this (1e-10) means the input holds only zeros


class Stretcher:
    """Loads a model once and stretches any number of signals with it.

    >>> s = Stretcher()                       # the packaged default model
    >>> y = s.stretch(x, 44100, rate=2.0)     # x: [N] or [C, N]; y: same layout, N / 2 samples
    >>> s.stretch_file("in.flac", "out.flac", rate=0.8)   # streamed: memory does not grow with the file
    """

    def __init__(self, checkpoint_path: str | os.PathLike | Model | None = None, device: str | None = None,
                 griffin_lim: int = 1, phase_lock: bool = False, residual: bool = True, chunk_frames: int = 1024,
                 transients: bool | None = None):
        if isinstance(griffin_lim, bool) or not isinstance(griffin_lim, (int, np.integer)) \
                or not 0 <= griffin_lim <= 1000:
            raise ConfigError(f"griffin_lim must be an iteration count in [0, 1000], got {griffin_lim!r}")
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)) \
                or not 1 <= chunk_frames <= 10 ** 6:
            raise ConfigError(f"chunk_frames must be a frame count in [1, 1000000], got {chunk_frames!r}")
        self.device = check_device(device)
        self.model = checkpoint_path if isinstance(checkpoint_path, Model) else \
            load_model(resolve_checkpoint(checkpoint_path))
        self.model.autoencoder.to(self.device)
        if self.model.refiner is not None:
            self.model.refiner.to(self.device)
        self.griffin_lim = int(griffin_lim)
        self.phase_lock = phase_lock
        self.residual = residual
        # attacks played at speed 1 with their own phase (see blocks); by default as the model was trained
        self.transients = bool(self.model.meta.get("transients", False) if transients is None else transients)
        self.chunk_frames = int(chunk_frames)  # output frames per streamed block (about 24 s)
        context = 0 if self.model.refiner is None else self.model.refiner.context_frames
        # frames of context each side of a block: the generator's, and n_fft / hop - 1 frames per
        # Griffin-Lim iteration (how far one overlap-add and re-analysis spreads a frame), plus two
        overlap = self.spectral.n_fft // self.spectral.hop - 1
        self.margin = context + overlap * self.griffin_lim + 2

    @property
    def spectral(self) -> SpectralConfig:
        return self.model.spectral

    @torch.no_grad()
    def stretch(self, audio, sr: int, rate: float | None = None, *, duration: float | None = None,
                time_map=None):
        """Stretch ``audio`` (numpy or torch, [N] or [C, N] at ``sr``) by a rate, to a duration, or
        along a time map (a Rubber Band time map file, or (source_frame, target_frame) pairs).

        Returns the same type and layout as float32 samples; a rate gives round(N / rate)
        samples. Integer PCM (int8/int16/int32/uint8) is scaled to [-1, 1] as soundfile reads it.
        An identity time map (rate 1) returns the input unchanged.
        """
        is_torch = isinstance(audio, torch.Tensor)
        if is_torch:
            arr = audio.detach().cpu()
            arr = (arr.float() if arr.dtype in (torch.bfloat16, torch.float16) else arr).numpy()  # no numpy bf16
        else:
            arr = np.asarray(audio)
        one_d = arr.ndim == 1
        wave = validate(arr, "input audio")
        check_sample_rate(sr)
        tmap = timemap.resolve(wave.shape[-1], int(sr), rate, duration, time_map)
        out = self._stretch_tensor(torch.from_numpy(wave).to(self.device), int(sr), tmap)
        if not torch.isfinite(out).all():
            raise AudioError("the stretched audio contains NaN or Inf samples (a broken model?)")
        out = out[0] if one_d else out
        return out.to(audio.device) if is_torch else out.cpu().numpy()

    @torch.no_grad()
    def _stretch_tensor(self, wave: torch.Tensor, sr: int, tmap: timemap.TimeMap) -> torch.Tensor:
        """wave: [C, N] float tensor at ``sr`` (on any device; a batch of clips is a [C, N] of
        clips) -> [C, tmap.n_out]."""
        out = wave.new_zeros(wave.shape[0], tmap.n_out)
        for start, chunk in self._blocks(wave, sr, tmap):
            out[:, start:start + chunk.shape[-1]] = chunk
        return out

    @torch.no_grad()
    def stretch_file(self, src: str | os.PathLike, dst: str | os.PathLike, rate: float | None = None, *,
                     duration: float | None = None, time_map=None, progress=None, clobber: bool = True) -> dict:
        """Stretches an audio file into ``dst`` (format from its extension), reading and writing in
        blocks: peak memory stays flat however long the file is. ``dst`` appears only when whole;
        an existing ``dst`` is replaced unless ``clobber`` is False. ``progress(done, total)`` is
        called after each block (seconds of output). Returns {"frames", "sample_rate",
        "channels", "clipped", "peak"} of the output ("clipped": samples over full scale that an
        integer format clipped; "peak": the largest magnitude before clipping)."""
        with AudioReader(src, self.device) as reader:
            sr = check_sample_rate(reader.sample_rate, reader.name)
            tmap = timemap.resolve(reader.frames, sr, rate, duration, time_map)
            dst = check_output_path(dst, inputs=(src,))
            with AudioWriter(dst, sr, reader.channels, like=reader, clobber=clobber) as writer:
                for start, chunk in self._blocks(reader, sr, tmap):
                    writer.write(chunk.cpu().numpy())
                    if progress is not None:
                        progress((start + chunk.shape[-1]) / sr, tmap.n_out / sr)
        return {"frames": tmap.n_out, "sample_rate": sr, "channels": reader.channels,
                "clipped": writer.clipped, "peak": writer.peak}

    def _blocks(self, source, sr: int, tmap: timemap.TimeMap):
        """Yields (first output sample, audio [C, k]) in order, covering 0..tmap.n_out.

        Each block of ``chunk_frames`` output frames reads only the input frames it needs (plus
        a margin for the generator's context and Griffin-Lim), continues the previous block's
        propagated phase, and is overlap-added; the samples no later frame can touch are yielded.
        The model runs on the bins below its Nyquist frequency (mapped onto its own bins); above
        it, the input's magnitudes are time-scaled as a phase vocoder would, so a 44.1 kHz file
        keeps its full band, and one phase reconstruction covers both.
        """
        cfg = input_config(self.spectral, sr)
        if tmap.is_identity:
            yield from passthrough(source, tmap.n_out, self.chunk_frames * cfg.hop)
            return
        band = Band(self.spectral, cfg, source.device if isinstance(source, torch.Tensor) else self.device)
        n_in, n_out = cfg.n_frames(source.shape[-1]), cfg.n_frames(tmap.n_out)
        block, margin = self.chunk_frames, self.margin
        ref, onsets = self._analysis(source, cfg, band, n_in)  # ref: [C]
        if ref.max() <= SILENT_DB:
            raise AudioError(f"{getattr(source, 'name', 'input audio')} is silent (every sample is zero)")
        # with transients, each detected attack is played at speed 1 and starts with the input's
        # phase; the stretch happens between attacks, as in a performance at another tempo
        positions, resets = timemap.frame_positions(tmap, cfg, n_in, onsets if self.transients else None, band.device)
        rate = torch.full((source.shape[0],), min(max(tmap.mean_rate, MIN_RATE), MAX_RATE), device=band.device)
        output = OverlapAdd(cfg, tmap.n_out)
        carry = None  # (first output frame, propagated phase) of the previous block
        for j0 in range(0, n_out, block):
            j1 = min(j0 + block, n_out)
            a, b = max(0, j0 - margin), min(n_out, j1 + margin)
            first = int(positions[a].floor())
            stop = min(n_in, int(positions[b - 1].floor()) + 2)
            spec = spectral.frames(source, cfg, first, stop).to(band.device)  # [C, F, stop - first]
            local = positions[a:b] - first
            start = None if carry is None else carry[1][..., a - carry[0]]
            # identical channels (dual mono, a centred source alone) are stretched once: they stay identical
            keep, inverse = distinct_channels(spec, start)
            if len(keep) < spec.shape[0]:
                spec, start = spec[keep], None if start is None else start[keep]
            source_phase = torch.angle(spec)
            phase = spectral.propagate_phase(source_phase, local, cfg, start, None if resets is None else resets[a:b])
            mag = self._magnitudes(spec.abs(), local, ref[keep], rate[:len(keep)], band)
            carry = (a, phase[inverse] if len(keep) < len(inverse) else phase)
            if self.phase_lock:
                phase = spectral.lock_phase(phase, mag, source_phase, local)
            if self.griffin_lim:
                full = spectral.griffin_lim(mag, phase, cfg, self.griffin_lim, length=tmap.n_out, offset=a)
            else:
                full = torch.polar(mag, phase)
            if len(keep) < len(inverse):
                full = full[inverse]
            first_sample, out = output.add(full[..., j0 - a:j1 - a], j0, last=j1 == n_out)
            if out.shape[-1]:
                yield first_sample, out

    def _analysis(self, source, cfg: SpectralConfig, band: Band, n_in: int) -> tuple[torch.Tensor, np.ndarray]:
        """One pass over the input in blocks: the loudest model-band bin of each channel in dB
        ([C], see :func:`channel_reference_db`) and, with ``transients``, the input samples where
        attacks start (all channels together, so the channels keep their timing)."""
        peak, power, envelope = None, [], []
        fb = spectral.mel_filters(self.spectral, band.device) if self.transients else None
        for s in range(0, n_in, self.chunk_frames):
            e = min(s + self.chunk_frames, n_in)
            seg = spectral.segment(source, cfg, s, e)
            mag = band.low_abs(spectral.frames(source, cfg, s, e, seg))  # [C, F, T]
            m = mag.amax(dim=(-2, -1))
            peak = m if peak is None else torch.maximum(peak, m)
            if fb is not None:
                power.append(torch.einsum("cft,fm->tm", mag.float() ** 2, fb))
                envelope.append(spectral.attack_envelope(seg, cfg, s, e))
        onsets = np.zeros(0, dtype=np.int64)
        if fb is not None:
            found = spectral.detect_onsets(torch.cat(power).cpu().numpy(), cfg)
            onsets = spectral.refine_onsets(found, torch.cat(envelope).cpu().numpy(), cfg)
        return channel_reference_db(peak, cfg), onsets

    def _magnitudes(self, mag: torch.Tensor, positions: torch.Tensor, ref, rate, band: Band) -> torch.Tensor:
        """Input magnitudes [C, F, T] -> stretched magnitudes [C, F, T'] (model below its Nyquist
        frequency, time-scaled input above it)."""
        frames = rearrange(spectral.magnitude_to_db(band.low(mag), ref, self.spectral), "c f t -> c t f")
        low = spectral.db_to_magnitude(rearrange(self._transform(frames, positions, rate), "c t f -> c f t"), ref)
        if band.full:
            return band.from_model(low)
        return band.combine(low, spectral.time_scale(mag[..., band.first_high:, :], positions, dim=-1))

    def _transform(self, frames: torch.Tensor, positions: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """dB frames [B, T, F] -> stretched dB frames [B, T', F] (encode, time-scale, refine, decode)."""
        ae = self.model.autoencoder
        scaled = spectral.time_scale(ae.encode(frames), positions)
        refined = scaled if self.model.refiner is None else self.model.refiner(scaled, rate)
        out = ae.decode(refined)
        if self.residual:
            # the refiner's change, decoded, applied to the time-scaled input frames: the
            # autoencoder's own reconstruction error (the same in both decodes) cancels out
            delta = out - ae.decode(scaled)
            out = (spectral.time_scale(frames, positions) + delta).clamp(-ae.cfg.db_range, 0)
        return steady_level(out, frames, positions, ae.cfg.db_range)


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
        signal, power = spectral.overlap_add(frames, cfg)  # from sample j0 * hop - n_fft / 2
        if self.pending is not None:
            signal[..., :self.pending.shape[-1]] += self.pending
            power[:self.weight.shape[-1]] += self.weight
        done = signal.shape[-1] if last else frames.shape[-1] * cfg.hop  # later frames start there
        lo = j0 * cfg.hop - cfg.n_fft // 2
        hi = min(lo + done, self.n_out)
        out = signal[..., max(0, -lo):hi - lo] / power[max(0, -lo):hi - lo].clamp_min(1e-8)
        self.pending, self.weight = signal[..., done:], power[done:]
        return max(lo, 0), out


def passthrough(source, n: int, step: int):
    """Yields (first sample, audio [C, k]) of the input itself, ``step`` samples at a time.

    An identity time map (rate 1) asks for the input unchanged: a true-tempo render at tempo 1
    is the input, and a refiner trained on other rates is not an identity (the default model
    at rate 1: 17 dB SNR on music), so the input is returned exactly. A silent input fails as
    it does at any other rate."""
    heard = False
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        chunk = spectral.read_padded(source, lo, hi) if isinstance(source, torch.Tensor) else source.read(lo, hi)
        heard = heard or bool(chunk.abs().amax() > 1e-10)
        yield lo, chunk
    if not heard:
        raise AudioError(f"{getattr(source, 'name', 'input audio')} is silent (every sample is zero)")


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


def steady_level(out: torch.Tensor, frames: torch.Tensor, positions: torch.Tensor, db_range: float) -> torch.Tensor:
    """Stretched dB frames [B, T', F] with the level of the input kept where the input is steady.

    Where the input's level does not change from frame to frame (a held note, a drone), the
    truly stretched signal has the input's level at any rate; the refiner, trained on music whose
    notes decay in real time (slower tempo: more decay between notes, a lower level), shifts the
    level by rate regardless (a steady tone: -3 dB at rate 0.25, +1.2 dB at rate 4). Each output
    frame's energy change is removed in proportion to how steady the input is around its source
    position: fully where its level does not change from frame to frame, not at all where it
    changes by ``STEADY_DB`` or more; decays and onsets keep the refiner's level.
    out: stretched dB frames [B, T', F]; frames: the input's dB frames [B, T, F]; positions [T'].
    """
    level = power_db(frames)  # [B, T]
    # |level change| across each boundary between input frames (none before the first or after
    # the last), then the largest within one frame of each boundary
    change = torch.nn.functional.pad((level[:, 1:] - level[:, :-1]).abs(), (1, 1))  # [B, T + 1]
    local = torch.nn.functional.max_pool1d(change[:, None], 3, 1, 1)[:, 0]
    i0 = positions.floor().long().clamp(0, frames.shape[1] - 1)  # output frame j lies between i0 and i0 + 1
    gate = (1 - torch.maximum(local[:, i0], local[:, i0 + 1]) / STEADY_DB).clamp(0, 1)  # [B, T']
    excess = power_db(out) - power_db(spectral.time_scale(frames, positions))  # [B, T']
    return (out - (gate * excess)[..., None]).clamp(-db_range, 0)


def power_db(frames: torch.Tensor) -> torch.Tensor:
    """dB frames [..., F] -> each frame's total power in dB [...]."""
    return torch.logsumexp(frames * (math.log(10) / 10), dim=-1) * (10 / math.log(10))


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
        twin = next((i for i, k in enumerate(keep) if sums[c] == sums[k]
                     and all(torch.equal(t[c], t[k]) for t in tensors)), None)
        if twin is None:
            keep.append(c)
            twin = len(keep) - 1
        inverse.append(twin)
    return keep, inverse


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000


def check_sample_rate(sr, what: str = "input audio") -> int:
    """The sample rates stretched: 8 to 192 kHz (the model's band is 11 kHz wide; below 8 kHz
    its frames would be long smears, above 192 kHz a frame would be over 17,000 samples long)."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
        raise AudioError(f"sample rate must be an integer number of Hz, got {sr!r}")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(f"{what} has sample rate {sr} Hz; sample rates from {MIN_SAMPLE_RATE} to "
                         f"{MAX_SAMPLE_RATE} Hz are supported (resample it first)")
    return int(sr)


def check_device(device) -> torch.device:
    """``device`` (None: cuda when available, else cpu) as a torch.device that exists here."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r}: no CUDA GPU is available here; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r}: there are {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r}: Apple's MPS backend is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return dev


_DEFAULT: dict = {}


def stretch(waveform, sr: int, rate: float | None = None, *, duration: float | None = None, time_map=None,
            checkpoint: str | os.PathLike | None = None, device: str | None = None, griffin_lim: int = 1):
    """Stretch ``waveform`` ([N] or [C, N], numpy or torch) by ``rate`` (2 halves the duration), to
    ``duration`` seconds, or along ``time_map``; see :meth:`Stretcher.stretch`."""
    key = (str(resolve_checkpoint(checkpoint)), device, griffin_lim)
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = Stretcher(checkpoint, device, griffin_lim)
    return _DEFAULT[key].stretch(waveform, sr, rate, duration=duration, time_map=time_map)
