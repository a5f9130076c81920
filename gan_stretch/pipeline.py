"""Stretcher: a checkpoint turned into ``stretch(audio, sr, rate)``.

audio [C, N] -> STFT [C, F, T] -> dB frames -> latents [C, T, L] (frozen autoencoder)
  -> time-scaled to T' frames -> refined (mapper or generator) -> decoded dB [C, T', F]
  -> magnitudes + phase propagated from the input -> Griffin-Lim refinement -> audio [C, N / rate]
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
from einops import rearrange

from . import checkpoint, spectral, timemap
from .audio import validate
from .errors import AudioError, CheckpointError
from .models import (AutoencoderConfig, FrameAutoencoder, GeneratorConfig, LatentGenerator, MapperConfig,
                     StretchMapper)
from .spectral import MAX_RATE, MIN_RATE, SpectralConfig

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "default.safetensors"
KINDS = ("autoencoder", "mapper", "gan")


@dataclass
class Model:
    """What a model checkpoint holds: STFT settings, the frozen autoencoder, and an optional refiner."""
    kind: str
    spectral: SpectralConfig
    autoencoder: FrameAutoencoder
    refiner: torch.nn.Module | None
    meta: dict

    def state(self) -> dict[str, torch.Tensor]:
        tensors = checkpoint.prefixed("autoencoder", self.autoencoder.state_dict())
        if self.refiner is not None:
            tensors.update(checkpoint.prefixed("refiner", self.refiner.state_dict()))
        return tensors


def build_refiner(kind: str, cfg: dict) -> torch.nn.Module | None:
    if kind == "mapper":
        return StretchMapper(MapperConfig(**cfg))
    if kind == "gan":
        return LatentGenerator(GeneratorConfig(**cfg))
    return None


def model_meta(kind: str, spec: SpectralConfig, ae: FrameAutoencoder, refiner, extra: dict | None = None) -> dict:
    return {"kind": kind, "spectral": spec.to_dict(), "autoencoder": ae.cfg.to_dict(),
            "refiner": refiner.cfg.to_dict() if refiner is not None else None, **(extra or {})}


def save_model(path, model: Model, half: bool = False) -> None:
    """Writes a model file; ``half`` stores weights as float16 (half the size; loaded back as float32)."""
    tensors = model.state()
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    checkpoint.save(path, tensors, model.meta)


def load_model(path: str | os.PathLike) -> Model:
    tensors, meta = checkpoint.load(path)
    kind = meta.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"checkpoint {path} is not a stretch model (kind={kind!r}; expected one of "
                              f"{', '.join(KINDS)}); a training-state file is not a model")
    try:
        spec = SpectralConfig.from_dict(meta["spectral"])
        ae = FrameAutoencoder(AutoencoderConfig(**meta["autoencoder"]))
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        ae.load_state_dict(checkpoint.unprefixed("autoencoder", tensors))
        refiner = build_refiner(kind, meta.get("refiner") or {})
        if refiner is not None:
            refiner.load_state_dict(checkpoint.unprefixed("refiner", tensors))
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its config ({e})") from None
    for m in (ae, refiner):
        if m is not None:
            m.eval().requires_grad_(False)
    return Model(kind, spec, ae, refiner, meta)


class Stretcher:
    """Loads a model once and stretches any number of signals with it.

    >>> s = Stretcher()                       # the packaged default model
    >>> y = s.stretch(x, 22050, rate=2.0)     # x: [N] or [C, N]; y: same layout, N / 2 samples
    """

    def __init__(self, checkpoint_path: str | os.PathLike | Model | None = None, device: str | None = None,
                 griffin_lim: int = 16, chunk_frames: int = 2048):
        self.model = checkpoint_path if isinstance(checkpoint_path, Model) else \
            load_model(checkpoint_path or DEFAULT_CHECKPOINT)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.autoencoder.to(self.device)
        if self.model.refiner is not None:
            self.model.refiner.to(self.device)
        self.griffin_lim = griffin_lim
        self.chunk_frames = chunk_frames  # output frames per streamed block (about 47 s at 22.05 kHz)
        refiner = self.model.refiner
        context = sum(d * (refiner.cfg.kernel - 1) // 2 for d in refiner.cfg.dilations) \
            if isinstance(refiner, LatentGenerator) else 0
        self.margin = context + 32  # frames of context each side of a block: the generator's + Griffin-Lim's

    @property
    def spectral(self) -> SpectralConfig:
        return self.model.spectral

    @torch.no_grad()
    def stretch(self, audio, sr: int, rate: float | None = None, *, duration: float | None = None,
                time_map=None):
        """Stretch ``audio`` (numpy or torch, [N] or [C, N] at ``sr``) by a rate, to a duration, or
        along a time map (a Rubber Band time map file, or (source_frame, target_frame) pairs).

        Returns the same type and layout; a rate gives round(N / rate) samples.
        """
        is_torch = isinstance(audio, torch.Tensor)
        arr = audio.detach().cpu().numpy() if is_torch else np.asarray(audio)
        one_d = arr.ndim == 1
        wave = validate(arr, "input audio")
        if not isinstance(sr, (int, np.integer)) or not 1000 <= sr <= 384000:
            raise AudioError(f"sample rate must be an integer number of Hz in [1000, 384000], got {sr!r}")
        tmap = timemap.resolve(wave.shape[-1], int(sr), rate, duration, time_map)
        out = self.stretch_tensor(torch.from_numpy(wave).to(self.device), int(sr), tmap)
        out = out[0] if one_d else out
        return out.to(audio.device) if is_torch else out.cpu().numpy()

    def stretch_tensor(self, wave: torch.Tensor, sr: int, tmap: timemap.TimeMap) -> torch.Tensor:
        """wave: [C, N] float tensor at ``sr`` -> [C, tmap.n_out].

        The model runs at its own sample rate. Above its Nyquist frequency, the input's band is
        stretched by a phase vocoder at the input's rate, so a 44.1 kHz file keeps its full band.
        """
        msr = self.spectral.sample_rate
        if sr == msr:
            return self._neural(wave, tmap)
        low = torchaudio.functional.resample(wave, sr, msr)
        out = fit(torchaudio.functional.resample(self._neural(low, tmap.scaled(msr / sr)), msr, sr), tmap.n_out)
        if sr > msr:
            high = wave - fit(torchaudio.functional.resample(low, msr, sr), wave.shape[-1])
            out = out + self._vocoder(high, sr, tmap)
        return out

    def _neural(self, wave: torch.Tensor, tmap: timemap.TimeMap) -> torch.Tensor:
        """The learned stretch at the model's rate: [C, N] -> [C, tmap.n_out]."""
        cfg = self.spectral
        rate = torch.full((wave.shape[0],), min(max(tmap.mean_rate, MIN_RATE), MAX_RATE), device=wave.device)

        def magnitudes(spec, positions, ref):
            frames = rearrange(spectral.magnitude_to_db(spec.abs(), ref, cfg), "c f t -> c t f")
            out_db = self.transform(frames, positions, rate)
            return spectral.db_to_magnitude(rearrange(out_db, "c t f -> c f t"), ref)

        return self._stream(wave, tmap, cfg, magnitudes, self.griffin_lim)

    def _vocoder(self, wave: torch.Tensor, sr: int, tmap: timemap.TimeMap) -> torch.Tensor:
        """A phase vocoder on this module's streaming path (for the band above the model's)."""
        scale = 2 ** max(0, round(math.log2(sr / self.spectral.sample_rate)))
        cfg = SpectralConfig(sample_rate=sr, n_fft=self.spectral.n_fft * scale, hop=self.spectral.hop * scale)

        def magnitudes(spec, positions, ref):
            return rearrange(spectral.time_scale(rearrange(spec.abs(), "c f t -> c t f"), positions), "c t f -> c f t")

        return self._stream(wave, tmap, cfg, magnitudes, 0)

    def _stream(self, wave: torch.Tensor, tmap: timemap.TimeMap, cfg: SpectralConfig, magnitudes,
                n_iter: int) -> torch.Tensor:
        """Stretches [C, N] -> [C, tmap.n_out] through blocks of ``chunk_frames`` output frames.

        Each block reads only the input frames it needs (plus a margin for the generator's
        context and Griffin-Lim), continues the previous block's propagated phase, and is
        overlap-added into the output, so memory does not grow with the input beyond the output.
        """
        n_in, n_out = cfg.n_frames(wave.shape[-1]), cfg.n_frames(tmap.n_out)
        positions = tmap.positions(n_out, cfg.hop, n_in, wave.device)
        block = self.chunk_frames
        ref = max(spectral.reference_db(spectral.frames(wave, cfg, s, min(s + block, n_in)).abs())
                  for s in range(0, n_in, block))
        margin = self.margin
        out = wave.new_zeros(wave.shape[0], (n_out - 1) * cfg.hop + cfg.n_fft)
        power = wave.new_zeros(out.shape[-1])
        carry = None  # (first output frame, propagated phase) of the previous block
        for j0 in range(0, n_out, block):
            j1 = min(j0 + block, n_out)
            a, b = max(0, j0 - margin), min(n_out, j1 + margin)
            first = int(positions[a].floor())
            stop = min(n_in, int(positions[b - 1].floor()) + 2)
            spec = spectral.frames(wave, cfg, first, stop)  # [C, F, stop - first]
            local = positions[a:b] - first
            start = None if carry is None else carry[1][..., a - carry[0]]
            phase = spectral.propagate_phase(spec, local, cfg, start)
            carry = (a, phase)
            mag = magnitudes(spec, local, ref)
            length = tmap.n_out - a * cfg.hop if b == n_out else None  # the last block ends with the output
            full = spectral.griffin_lim(mag, phase, cfg, n_iter, length=length) if n_iter else torch.polar(mag, phase)
            signal, weight = spectral.overlap_add(full[..., j0 - a:j1 - a], cfg)
            out[:, j0 * cfg.hop:j0 * cfg.hop + signal.shape[-1]] += signal
            power[j0 * cfg.hop:j0 * cfg.hop + weight.shape[-1]] += weight
        out = out / power.clamp_min(1e-11)
        return fit(out[:, cfg.n_fft // 2:], tmap.n_out)

    def transform(self, frames: torch.Tensor, positions: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """dB frames [B, T, F] -> stretched dB frames [B, T', F] (encode, time-scale, refine, decode)."""
        ae = self.model.autoencoder
        latents = spectral.time_scale(ae.encode(frames), positions)
        if self.model.refiner is not None:
            latents = self.model.refiner(latents, rate)
        return ae.decode(latents)


def fit(wave: torch.Tensor, n: int) -> torch.Tensor:
    """Cut or zero-pad the last axis to ``n`` samples."""
    return torch.nn.functional.pad(wave, (0, max(0, n - wave.shape[-1])))[..., :n]


_DEFAULT: dict = {}


def stretch(waveform, sr: int, rate: float | None = None, *, duration: float | None = None, time_map=None,
            checkpoint: str | os.PathLike | None = None, device: str | None = None, griffin_lim: int = 16):
    """Stretch ``waveform`` ([N] or [C, N], numpy or torch) by ``rate`` (2 halves the duration), to
    ``duration`` seconds, or along ``time_map``; see :meth:`Stretcher.stretch`."""
    key = (str(checkpoint or DEFAULT_CHECKPOINT), device, griffin_lim)
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = Stretcher(checkpoint, device, griffin_lim)
    return _DEFAULT[key].stretch(waveform, sr, rate, duration=duration, time_map=time_map)
