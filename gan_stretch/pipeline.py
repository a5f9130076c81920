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
    """A model loaded once, to stretch any number of signals and files with it.

    Each signal goes through the model's frozen autoencoder (dB frames to latents), is
    time-scaled in latent space, refined by the model's generator or mapper, decoded, and
    turned back into audio with the input's phase propagated and Griffin-Lim iterations. The
    output keeps the input's pitch; only its duration changes.

    Parameters
    ----------
    checkpoint_path : str, os.PathLike, Model or None
        A model file (``model.safetensors`` of a training run), the name of a packaged model
        (``"default"``: the GAN, ``"mapper"``: its supervised baseline), or a :class:`Model`
        already loaded. None: the packaged default.
    device : str or None
        Where the model runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. None: CUDA when
        available, else the CPU.
    griffin_lim : int
        Griffin-Lim iterations after the phase propagation, 0 to 1000. Each one makes the
        spectrogram more consistent with a real signal and costs about one more STFT pair; 0
        keeps the propagated phase as it is.
    phase_lock : bool
        Identity phase locking (Laroche and Dolson): the bins of each partial keep their phase
        offsets from the input, which reduces phasiness on tonal music.
    residual : bool
        Residual decoding: the refiner's change, decoded, is applied to the time-scaled input
        frames, so the autoencoder's own reconstruction error cancels out. False decodes the
        refined latents directly (what the autoencoder alone can represent).
    chunk_frames : int
        Output frames per streamed block (1024 frames of 512 samples at 22.05 kHz: about 24 s).
        Memory grows with the block, not with the signal; the result does not depend on it
        beyond float rounding.
    transients : bool or None
        Play each detected attack at speed 1 with the input's phase (the stretch happens between
        attacks), so drums and plucks stay sharp. None: as the model was trained (its file
        records it).

    Raises
    ------
    CheckpointError
        The model file is missing, truncated, corrupt, not a model (a training state), or holds
        NaN or Inf weights.
    ConfigError
        ``griffin_lim``, ``chunk_frames`` or ``device`` is not usable here, or the model file's
        configuration cannot describe a network.

    See Also
    --------
    stretch : the same on one signal, without keeping a Stretcher.
    load_model : the model file alone.

    Examples
    --------
    >>> import numpy as np
    >>> from gan_stretch import Stretcher
    >>> sr = 22050
    >>> x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)  # 1 s of A4
    >>> s = Stretcher(device="cpu")                     # the packaged default model
    >>> s.stretch(x, sr, rate=2.0).shape                # twice as fast: half the samples
    (11025,)
    >>> s.stretch(np.stack([x, x]), sr, duration=1.5).shape   # stereo, to 1.5 seconds
    (2, 33075)
    >>> Stretcher(device="cpu", griffin_lim=4, phase_lock=True).stretch(x, sr, 0.5).shape
    (44100,)
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
        """Stretch a signal by a rate, to a duration, or along a time map.

        Parameters
        ----------
        audio : np.ndarray or torch.Tensor, shape [N] or [C, N]
            Samples at ``sr``: float in [-1, 1], or integer PCM (int8, int16, int32, uint8),
            scaled to [-1, 1] as soundfile reads it. At most 64 channels.
        sr : int
            Sample rate of ``audio`` in Hz, 8000 to 192000. The model's band (up to 11 kHz) is
            mapped onto the input's bins; above it the input's own magnitudes are time-scaled.
        rate : float or None
            Speed, 0.25 to 4: 2 plays twice as fast (half the duration), 0.5 half as fast.
        duration : float or None, keyword-only
            The output's duration in seconds, instead of a rate.
        time_map : str, os.PathLike or sequence of (int, int), keyword-only
            A Rubber Band time map file, or (source_frame, target_frame) pairs of sample indices,
            both increasing: the input sample that plays at each output sample. With a rate or a
            duration as well, that sets the output's end; without, the input plays on at speed 1
            after the last pair.

        Returns
        -------
        np.ndarray or torch.Tensor, shape [N'] or [C, N']
            float32 samples, the same type, layout and (for a tensor) device as ``audio``; a
            rate gives ``N' = round(N / rate)``. At rate 1 (an identity time map) the input is
            returned unchanged.

        Raises
        ------
        AudioError
            ``audio`` is empty, silent, transposed, not real numbers, holds NaN or Inf, or ``sr``
            is out of range; or the model produced NaN or Inf.
        RateError
            The rate or duration is out of range, both are given, none is, or the time map is
            not increasing or reaches beyond the input.

        Examples
        --------
        >>> import numpy as np
        >>> from gan_stretch import Stretcher
        >>> sr = 22050
        >>> x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
        >>> s = Stretcher(device="cpu")
        >>> s.stretch(x, sr, 0.8).shape                     # round(22050 / 0.8) samples
        (27562,)
        >>> s.stretch(x, sr, time_map=[(11025, 5000)]).shape  # the first half in 5000 samples
        (16025,)
        >>> s.stretch(x, sr, rate=8)
        Traceback (most recent call last):
        ...
        gan_stretch.errors.RateError: rate must be a finite number in [0.25, 4.0], got 8.0
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
        """Stretch an audio file into another, reading and writing in blocks.

        Peak memory stays flat however long the file is, and the result equals
        :meth:`stretch` on the whole signal. ``dst`` appears only when whole: a failure leaves
        no partial file (and an existing ``dst`` as it was).

        Parameters
        ----------
        src : str or os.PathLike
            An audio file soundfile reads (WAV, FLAC, OGG, MP3, AIFF, ...), 8 to 192 kHz.
        dst : str or os.PathLike
            The output file; its extension picks the format. The sample rate, channels and,
            where the format allows, the sample format follow ``src``.
        rate, duration, time_map
            As in :meth:`stretch` (a time map counts samples of ``src``).
        progress : callable or None, keyword-only
            Called as ``progress(done, total)`` after each block, in seconds of output.
        clobber : bool, keyword-only
            Replace an existing ``dst``; False refuses to (AudioError).

        Returns
        -------
        dict
            ``frames`` (samples per channel written), ``sample_rate`` (Hz), ``channels``,
            ``clipped`` (samples over full scale that an integer format clipped) and ``peak``
            (the largest magnitude before clipping).

        Raises
        ------
        AudioError
            ``src`` is missing, unreadable, truncated, empty, silent or holds NaN or Inf;
            ``dst`` is ``src``, exists with ``clobber=False``, or its format or folder cannot
            take the audio.
        RateError
            As in :meth:`stretch`.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, soundfile as sf
        >>> from gan_stretch import Stretcher
        >>> folder = tempfile.mkdtemp()
        >>> src, dst = os.path.join(folder, "in.wav"), os.path.join(folder, "out.flac")
        >>> sf.write(src, 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050), 22050)
        >>> info = Stretcher(device="cpu").stretch_file(src, dst, rate=0.8)
        >>> info["frames"], info["sample_rate"], info["channels"], info["clipped"]
        (27562, 22050, 1, 0)
        >>> sf.info(dst).frames
        27562
        """
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
    """Stretch a signal: change its duration, keep its pitch.

    The model is loaded on the first call and kept for the next ones with the same
    ``checkpoint``, ``device`` and ``griffin_lim`` (a :class:`Stretcher` gives every other
    setting).

    Parameters
    ----------
    waveform : np.ndarray or torch.Tensor, shape [N] or [C, N]
        Samples at ``sr`` (float in [-1, 1], or integer PCM).
    sr : int
        Sample rate in Hz, 8000 to 192000.
    rate : float or None
        Speed, 0.25 to 4, as in librosa: 2 halves the duration.
    duration : float or None, keyword-only
        The output's duration in seconds, instead of a rate.
    time_map : str, os.PathLike or sequence of (int, int), keyword-only
        A Rubber Band time map file or (source_frame, target_frame) sample pairs
        (see :meth:`Stretcher.stretch`).
    checkpoint : str, os.PathLike or None, keyword-only
        A model file or packaged model name (``"default"``, ``"mapper"``); None: the default.
    device : str or None, keyword-only
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; None: CUDA when available.
    griffin_lim : int, keyword-only
        Griffin-Lim iterations after the phase propagation, 0 to 1000.

    Returns
    -------
    np.ndarray or torch.Tensor, shape [N'] or [C, N']
        float32 samples in the layout and type of ``waveform``; ``N' = round(N / rate)``.

    Raises
    ------
    AudioError
        Empty, silent, transposed or non-finite audio, or a sample rate out of range.
    RateError
        A rate, duration or time map that cannot be honoured.
    CheckpointError
        The model file is missing or not a model.
    ConfigError
        ``device`` or ``griffin_lim`` is not usable.

    See Also
    --------
    Stretcher : every setting, files streamed in blocks.

    Examples
    --------
    >>> import numpy as np
    >>> import gan_stretch
    >>> sr = 22050
    >>> x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr).astype(np.float32)  # 2 s of A4
    >>> y = gan_stretch.stretch(x, sr, rate=2.0, device="cpu")
    >>> y.shape, y.dtype
    ((22050,), dtype('float32'))
    >>> gan_stretch.stretch(x, sr, duration=3.0, device="cpu").shape
    (66150,)
    """
    key = (str(resolve_checkpoint(checkpoint)), device, griffin_lim)
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = Stretcher(checkpoint, device, griffin_lim)
    return _DEFAULT[key].stretch(waveform, sr, rate, duration=duration, time_map=time_map)
