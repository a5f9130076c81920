"""Stretcher: a model turned into ``stretch(audio, sr, rate)``, streamed in blocks.

audio [C, N] -> STFT [C, F, T] -> dB frames -> latents [C, T, L] (frozen autoencoder)
  -> time-scaled to T' frames -> refined (mapper or generator) -> decoded dB [C, T', F]
  -> magnitudes + phase propagated from the input -> Griffin-Lim refinement -> audio [C, N / rate]

The block loop is here; its pieces live beside it in stretching/: sources.py (what it reads),
streaming.py (the analysis pass, overlap-add, identical channels), plan.py (the plan and a block's
view of it), blocks.py (one block), magnitudes.py (the model's part of a block, levels); below it
the model file (models/model_file.py) and the signal processing (dsp/: STFT, phase, onsets, time
maps, bands, synthesis). pipeline.py holds :func:`~gan_stretch.stretching.pipeline.stretch`,
which keeps one Stretcher.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from gan_stretch.dsp import onset_detection, pitch, spectrum, timemap
from gan_stretch.dsp.band import Band, input_config
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import AudioError, ConfigError
from gan_stretch.io.audio import AudioReader, AudioWriter, check_output_path, check_sample_rate, validate
from gan_stretch.models.model_file import Model, check_device, load_model, resolve_checkpoint
from gan_stretch.runtime.memory import reuse_freed_memory
from gan_stretch.runtime.threads import adaptive_threads
from gan_stretch.settings import check_count
from gan_stretch.stretching.blocks import SILENT_DB, render_block
from gan_stretch.stretching.plan import make_plan
from gan_stretch.stretching.sources import InMemory, Source, Streamed
from gan_stretch.stretching.streaming import (
    OverlapAdd,
    analysis_pass,
    direct_current,
    frame_store,
    passthrough,
)

DC_MIN = 1e-3  # a channel's mean (-60 dBFS) from which it is taken out before the stretch


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
        (``"default"``: the generator, trained without adversarial terms; ``"mapper"``: the frame-wise baseline), or a :class:`Model`
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
    decays : bool or None
        Between attacks, let each band decay in real time as at the new tempo instead of at the
        input's pace (:mod:`gan_stretch.dsp.decays`; needs ``transients``). None: with transients.
    gap_ratio : float or None
        With ``transients``, the music between two attacks played at speed 1 is played at most
        this many times faster or slower than the rate asks there; an attack that would need
        more is stretched with the rest. None: only the absolute limits (local rates 0.125 to 8).
    refine_attacks : bool or None
        Griffin-Lim refines every frame (True), or only the stretched ones (False): the frames of
        attacks played at speed 1 keep the input's own magnitudes and phase. None: only where the
        music is slowed down (there Griffin-Lim would spread the long stretched frames' energy
        into the attacks: pre-echo; where it is sped up, the short compressed gaps gain from the
        refinement across their edges).
    attack_span : (int, int) or None
        With ``transients``, the frames before and after each onset played at speed 1, each 0 to
        8. None: :data:`~gan_stretch.dsp.onset_detection.ATTACK_FRAMES` (2, 2), every frame whose window
        reaches the onset (the packaged models were trained with 3 each side; measured in
        docs/results/attack-span/).
    phase_floor_db : float or None
        Bins of the input more than this many dB below their channel's loudest restart their
        propagated phase as the input's where they are read (:func:`~gan_stretch.dsp.phase_vocoder.propagate_phase`'s
        ``quiet``): the phase of a near-silent bin is the FFT's rounding, which the running sum
        would carry into the bin's later, audible frames (differently on a CPU and a GPU). None:
        never (every bin propagates from the first frame or the last attack).
    dense_attacks : bool
        With ``transients``, attacks closer together than ``attack_span`` (16th notes sped up,
        rolls) get shorter regions (fewer frames at speed 1, down to one) instead of being
        stretched with the music between them, which lost 6 to 15 dB of such hits; False: only
        regions of the full span (as the packaged models were trained).

    Notes
    -----
    On the CPU a stretch uses at most ``torch.get_num_threads()`` threads, and of those only as
    many as other processes leave cores idle, measured between blocks
    (:mod:`gan_stretch.runtime.threads`): on a shared machine a busy core does not stall every operation.
    ``torch.set_num_threads(1)`` before stretching fixes one thread (and the float rounding with
    it; one and two threads differ by about 4e-7 relative RMS).

    Raises
    ------
    CheckpointError
        The model file is missing, truncated, corrupt, not a model (a training state), or holds
        NaN or Inf weights.
    ConfigError
        ``griffin_lim``, ``chunk_frames``, ``gap_ratio``, ``attack_span`` or ``device`` is not
        usable here, or the model file's configuration cannot describe a network.

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

    def __init__(
        self,
        checkpoint_path: str | os.PathLike | Model | None = None,
        device: str | None = None,
        griffin_lim: int = 1,
        phase_lock: bool = False,
        residual: bool = True,
        chunk_frames: int = 1024,
        transients: bool | None = None,
        decays: bool | None = None,
        gap_ratio: float | None = None,
        refine_attacks: bool | None = None,
        attack_span: tuple[int, int] | None = None,
        phase_floor_db: float | None = None,
        dense_attacks: bool = True,
    ):
        check_count("griffin_lim", griffin_lim, "an iteration count", 0, 1000)
        if phase_floor_db is not None and (
            isinstance(phase_floor_db, bool)
            or not isinstance(phase_floor_db, (int, float))
            or not 0 < phase_floor_db < math.inf
        ):
            raise ConfigError(f"phase_floor_db must be a positive number of dB, or None; got {phase_floor_db!r}")
        self.phase_floor_db = None if phase_floor_db is None else float(phase_floor_db)
        check_count("chunk_frames", chunk_frames, "a frame count", 1, 10**6)
        self.device = check_device(device)
        self.model = (
            checkpoint_path if isinstance(checkpoint_path, Model) else load_model(resolve_checkpoint(checkpoint_path))
        )
        self.model.to(self.device)
        if self.device.type == "cpu":
            reuse_freed_memory()  # the block loop's large tensors reuse freed memory (gan_stretch.runtime.memory)
        self.griffin_lim = int(griffin_lim)
        self.phase_lock = phase_lock
        self.residual = residual
        # attacks played at speed 1 with their own phase (see blocks); by default as the model was trained
        self.transients = bool(self.model.meta.get("transients", False) if transients is None else transients)
        self.decays = self.transients if decays is None else bool(decays)  # needs the attack regions
        if gap_ratio is not None and (
            isinstance(gap_ratio, bool) or not isinstance(gap_ratio, (int, float)) or not 1 <= gap_ratio < math.inf
        ):
            raise ConfigError(f"gap_ratio must be a finite number of at least 1, or None; got {gap_ratio!r}")
        self.gap_ratio = None if gap_ratio is None else float(gap_ratio)
        self.refine_attacks = None if refine_attacks is None else bool(refine_attacks)
        span = onset_detection.ATTACK_FRAMES if attack_span is None else attack_span
        if not isinstance(span, (tuple, list)) or len(span) != 2:
            raise ConfigError(f"attack_span must be two frame counts (before, after), got {attack_span!r}")
        for v in span:
            check_count("attack_span", v, "two frame counts (before, after)", 0, 8)
        self.attack_span = (int(span[0]), int(span[1]))
        self.dense_attacks = bool(dense_attacks)
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
    def stretch(
        self,
        audio,
        sr: int,
        rate: float | None = None,
        *,
        duration: float | None = None,
        time_map=None,
        semitones: float = 0.0,
    ):
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
        semitones : float, keyword-only
            Shift the pitch as well, by -24 to 24 semitones (:mod:`gan_stretch.dsp.pitch`: a stretch
            to 2 ** (semitones / 12) times the length, then resampled back); 0 keeps it.

        Returns
        -------
        np.ndarray or torch.Tensor, shape [N'] or [C, N']
            float32 samples, the same type, layout and (for a tensor) device as ``audio``; a
            rate gives ``N' = round(N / rate)``. At rate 1 (an identity time map) and no pitch
            shift the input is returned unchanged.

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
        with adaptive_threads(self.device.type == "cpu"):  # the checks' passes too (gan_stretch.runtime.threads)
            return self._stretch(audio, sr, rate, duration, time_map, semitones)

    def _stretch(self, audio, sr, rate, duration, time_map, semitones):
        is_torch = isinstance(audio, torch.Tensor)
        if is_torch:
            arr = audio.detach().cpu()
            arr = (arr.float() if arr.dtype in (torch.bfloat16, torch.float16) else arr).numpy()  # no numpy bf16
        else:
            arr = np.asarray(audio)
        one_d = arr.ndim == 1
        wave = validate(arr, "input audio")
        check_sample_rate(sr)
        semitones = pitch.check_semitones(semitones)
        tmap = timemap.resolve(wave.shape[-1], int(sr), rate, duration, time_map)
        inner = pitch.stretch_map(tmap, semitones) if semitones else tmap
        out = self._stretch_tensor(torch.from_numpy(wave).to(self.device), int(sr), inner)
        if not torch.isfinite(out).all():
            raise AudioError("the stretched audio contains NaN or Inf samples (a broken model?)")
        if semitones:
            out = torch.from_numpy(pitch.resample(out.cpu().numpy(), semitones, tmap.n_out))
        out = out[0] if one_d else out
        return out.to(audio.device) if is_torch else out.cpu().numpy()

    def stream(self, sr: int, channels: int, rate: float, block_frames: int = 16, lookahead_frames: int = 8):
        """A real-time stretch: chunks in, chunks out (:class:`gan_stretch.stretching.realtime.Stream`).

        No pass over the whole input: levels, attacks and decays are decided from what has been
        heard and a bounded lookahead, and the output trails the input by ``latency`` input
        samples (about 1.1 s at rate 0.5, 1.5 s at rate 1 and 2.5 s at rate 2, at any sample
        rate: the frames last 23 ms). The
        output does not depend on the chunk sizes, and the rate may change between chunks
        (``process(chunk, rate=...)``: from that chunk's first sample on).

        Parameters
        ----------
        sr : int
            Sample rate in Hz, 8000 to 192000.
        channels : int
            Channels of each chunk, 1 to 64.
        rate : float
            Speed, 0.25 to 4, until a chunk changes it.
        block_frames : int
            Output frames per block the model and Griffin-Lim run on (1 to 4096; each with the
            offline loop's context before it): fewer lower the latency and cost more per second
            of audio.
        lookahead_frames : int
            Output frames each block reads past its end, 0 to the offline loop's margin (33 for
            the packaged models): the generator's context beyond them is cut. More raise the
            latency; on the evaluation sets 8 and 33 score the same (docs/results/realtime/).

        Examples
        --------
        >>> import numpy as np
        >>> from gan_stretch import Stretcher
        >>> sr = 22050
        >>> x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr).astype(np.float32)
        >>> s = Stretcher(device="cpu").stream(sr, channels=1, rate=2.0)
        >>> parts = [s.process(x[i : i + 4096]) for i in range(0, len(x), 4096)]
        >>> out = np.concatenate(parts + [s.finish()])
        >>> out.shape                                         # round(44100 / 2) samples
        (22050,)
        """
        from gan_stretch.stretching.realtime import Stream

        return Stream(self, sr, channels, rate, block_frames, lookahead_frames)

    def shift(self, audio, sr: int, semitones: float):
        """Shift the pitch of a signal by ``semitones`` (-24 to 24), keeping its duration.

        The signal is stretched to ``2 ** (semitones / 12)`` times its duration, then resampled
        back to its length (soxr), as librosa's ``pitch_shift`` and ``rubberband -p`` do;
        :meth:`stretch` with ``semitones=`` does both at once. Returns the same type, layout and
        length as ``audio``.

        Examples
        --------
        >>> import numpy as np
        >>> from gan_stretch import Stretcher
        >>> sr = 22050
        >>> x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)  # A4
        >>> Stretcher(device="cpu").shift(x, sr, 3).shape   # C5, the same length
        (22050,)
        """
        return self.stretch(audio, sr, 1.0, semitones=semitones)

    @torch.no_grad()
    def _stretch_tensor(self, wave: torch.Tensor, sr: int, tmap: timemap.TimeMap) -> torch.Tensor:
        """wave: [C, N] float tensor at ``sr`` (on any device; a batch of clips is a [C, N] of
        clips) -> [C, tmap.n_out]."""
        out = wave.new_zeros(wave.shape[0], tmap.n_out)
        for start, chunk in self._blocks(InMemory(wave), sr, tmap):
            out[:, start : start + chunk.shape[-1]] = chunk
            del chunk  # not kept through the next block (see _stretch_loop)
        return out

    @torch.no_grad()
    def stretch_file(
        self,
        src: str | os.PathLike,
        dst: str | os.PathLike,
        rate: float | None = None,
        *,
        duration: float | None = None,
        time_map=None,
        progress=None,
        clobber: bool = True,
        semitones: float = 0.0,
    ) -> dict:
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
        semitones : float, keyword-only
            Shift the pitch as well (as in :meth:`stretch`); the resampler streams too.

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
        with adaptive_threads(self.device.type == "cpu"), AudioReader(src, self.device) as reader:
            sr = check_sample_rate(reader.sample_rate, reader.name)
            semitones = pitch.check_semitones(semitones)
            tmap = timemap.resolve(reader.frames, sr, rate, duration, time_map)
            inner = pitch.stretch_map(tmap, semitones) if semitones else tmap
            resampler = pitch.Resampler(semitones, reader.channels, tmap.n_out) if semitones else None
            dst = check_output_path(dst, inputs=(src,))
            with AudioWriter(dst, sr, reader.channels, like=reader, clobber=clobber) as writer:
                for start, chunk in self._blocks(Streamed(reader, self.device), sr, inner):
                    block = chunk.cpu().numpy()
                    writer.write(block if resampler is None else resampler.push(block))
                    if progress is not None:
                        progress((start + chunk.shape[-1]) / sr, inner.n_out / sr)
                    del chunk, block  # not kept through the next block (see _stretch_loop)
                if resampler is not None:
                    writer.write(resampler.finish())
        return {
            "frames": tmap.n_out,
            "sample_rate": sr,
            "channels": reader.channels,
            "clipped": writer.clipped,
            "peak": writer.peak,
        }

    def _blocks(self, source: Source, sr: int, tmap: timemap.TimeMap):
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
        # each channel's DC offset is taken out before the STFT and added back to the output: the
        # stretched frames of a constant are not a constant (their overlap-add swings at the ends
        # and between blocks; a 0.5 offset at rate 0.5 reached -0.95 at the end). Offsets below
        # DC_MIN are left in (the swing is about twice the offset): music's own mean over an
        # excerpt is mostly below it, and channels identical for a while stay identical
        dc = direct_current(source, self.chunk_frames * cfg.hop)
        dc = torch.where(dc.abs() >= DC_MIN, dc, 0.0)
        if not bool(dc.any()):
            yield from self._stretched(source, sr, tmap, cfg)
            return
        for start, chunk in self._stretched(source.less(dc), sr, tmap, cfg, dc):
            chunk = chunk + dc.to(chunk.device, chunk.dtype)[:, None]
            yield start, chunk
            del chunk  # not kept through the next block (see _stretch_loop)

    def _stretched(self, source: Source, sr: int, tmap: timemap.TimeMap, cfg: SpectralConfig, dc=None):
        """:meth:`_blocks` on a source without DC offset; ``dc`` [C]: the offset taken out, if any
        (where it was all there was, the output is silence, to which the caller adds it).

        On the CPU each block runs on the cores other processes leave idle, up to torch's thread
        count (:func:`gan_stretch.runtime.threads.adaptive_threads`), which is restored at the end."""
        with adaptive_threads(self.device.type == "cpu") as adjust:
            yield from self._stretch_loop(source, sr, tmap, cfg, dc, adjust)

    def _stretch_loop(self, source: Source, sr: int, tmap: timemap.TimeMap, cfg: SpectralConfig, dc, adjust):
        """:meth:`_stretched`'s work; ``adjust()`` sets the thread count before each block."""
        adjust()
        band = Band(self.spectral, cfg, source.device)
        n_in, n_out = cfg.n_frames(source.shape[-1]), cfg.n_frames(tmap.n_out)
        block, margin = self.chunk_frames, self.margin
        # audio in memory: the analysis pass keeps its STFT for the blocks; a file is read again
        # block by block, so its memory stays that of one block at any length
        store = frame_store(source.shape[0], cfg, n_in, band.device) if source.in_memory else None
        found = analysis_pass(source, cfg, self.spectral, band, n_in, block, self.transients, store)
        ref, onsets, mel_db = found.ref_db, found.onsets, found.levels_db
        if ref.max() <= SILENT_DB and dc is not None and bool((dc.abs() > 10 ** (SILENT_DB / 20)).any()):
            # a constant signal: the offset alone
            step = self.chunk_frames * cfg.hop
            for lo in range(0, tmap.n_out, step):
                yield lo, torch.zeros(source.shape[0], min(step, tmap.n_out - lo), device=band.device)
            return
        if ref.max() <= SILENT_DB:
            raise AudioError(f"{source.name} is silent (every sample is zero)")
        # with transients, each detected attack is played at speed 1 and starts with the input's
        # phase; the stretch happens between attacks, as in a performance at another tempo
        plan = make_plan(
            tmap,
            cfg,
            n_in,
            onsets if self.transients else None,
            mel_db,
            span=self.attack_span,
            dense=self.dense_attacks,
            gap_ratio=self.gap_ratio,
            decay=self.decays,
            features=self.model.frame_features,
            refine_attacks=self.refine_attacks,
            device=band.device,
        )
        del found, onsets, mel_db  # the plan holds what the blocks need of the analysis
        if plan.change is not None:  # kept in float32, as the blocks read it (decays.to_bins_tensor): half the memory
            plan.change = plan.change.astype(np.float32)
        positions = plan.read
        rate = torch.full((source.shape[0],), plan.rate, device=band.device)
        output = OverlapAdd(cfg, tmap.n_out)
        carry = None  # the previous block's propagated phase at this block's first frame [C, F]
        for j0 in range(0, n_out, block):
            adjust()
            j1 = min(j0 + block, n_out)
            a, b = max(0, j0 - margin), min(n_out, j1 + margin)
            first = int(positions[a].floor())
            stop = min(n_in, int(positions[b - 1].floor()) + 2)
            view = plan.block(a, b, first)
            # the input's frames [C, F, stop - first] are passed on, not kept here: render_block
            # lets them go once it has their phases and magnitudes
            frames_in = self._block_frames(source, store, cfg, first, stop, band.device)
            full, phase = render_block(self, frames_in, view, carry, ref, rate, band, cfg, tmap.n_out, a)
            # the next block starts from this one's propagated phase at its first frame: that frame
            # alone is kept (the whole block's phase, kept through the next block, fragmented the heap)
            nxt = max(0, j1 - margin)
            carry = phase[..., nxt - a].clone() if j1 < n_out else None
            first_sample, out = output.add(full[..., j0 - a : j1 - a], j0, last=j1 == n_out)
            # this block's tensors go before its samples are handed over: alive through the yield,
            # they stood beside the next block's (110 MB of a stereo 44.1 kHz block)
            del view, full, phase
            if out.shape[-1]:
                yield first_sample, out
            del out

    @staticmethod
    def _block_frames(source: Source, store, cfg: SpectralConfig, first: int, stop: int, device) -> list:
        """Input frames first..stop-1 [C, F, stop - first] (from ``store``, or computed from the
        source), in a list the caller empties as it passes them on."""
        if store is not None:
            return [store[..., first:stop]]
        return [spectrum.frames(source, cfg, first, stop).to(device)]
