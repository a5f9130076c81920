"""Stretcher: a checkpoint turned into ``stretch(audio, sr, rate)``.

audio [C, N] -> STFT [C, F, T] -> dB frames -> latents [C, T, L] (frozen autoencoder)
  -> time-scaled to T' frames -> refined (mapper or generator) -> decoded dB [C, T', F]
  -> magnitudes + phase propagated from the input -> Griffin-Lim refinement -> audio [C, N / rate]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio
from einops import rearrange

from . import checkpoint, spectral
from .audio import validate
from .errors import CheckpointError
from .models import (AutoencoderConfig, FrameAutoencoder, GeneratorConfig, LatentGenerator, MapperConfig,
                     StretchMapper)
from .spectral import SpectralConfig

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


def save_model(path, model: Model) -> None:
    checkpoint.save(path, model.state(), model.meta)


def load_model(path: str | os.PathLike) -> Model:
    tensors, meta = checkpoint.load(path)
    kind = meta.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"checkpoint {path} is not a stretch model (kind={kind!r}; expected one of "
                              f"{', '.join(KINDS)}); a training-state file is not a model")
    try:
        spec = SpectralConfig.from_dict(meta["spectral"])
        ae = FrameAutoencoder(AutoencoderConfig(**meta["autoencoder"]))
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
                 griffin_lim: int = 16):
        self.model = checkpoint_path if isinstance(checkpoint_path, Model) else \
            load_model(checkpoint_path or DEFAULT_CHECKPOINT)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.autoencoder.to(self.device)
        if self.model.refiner is not None:
            self.model.refiner.to(self.device)
        self.griffin_lim = griffin_lim

    @property
    def spectral(self) -> SpectralConfig:
        return self.model.spectral

    @torch.no_grad()
    def stretch(self, audio, sr: int, rate: float):
        """audio: numpy or torch, [N] or [C, N] at ``sr`` -> the same type and layout, round(N / rate) samples."""
        rate = spectral.check_rate(rate)
        is_torch = isinstance(audio, torch.Tensor)
        arr = audio.detach().cpu().numpy() if is_torch else np.asarray(audio)
        one_d = arr.ndim == 1
        wave = validate(arr, "input audio")
        out = self.stretch_tensor(torch.from_numpy(wave).to(self.device), sr, rate)
        out = out[0] if one_d else out
        return out.to(audio.device if is_torch else "cpu") if is_torch else out.cpu().numpy()

    def stretch_tensor(self, wave: torch.Tensor, sr: int, rate: float) -> torch.Tensor:
        """wave: [C, N] float tensor -> [C, round(N / rate)]."""
        cfg = self.spectral
        n_out = max(1, int(round(wave.shape[-1] / rate)))
        if sr != cfg.sample_rate:
            wave = torchaudio.functional.resample(wave, sr, cfg.sample_rate)
        n_model = max(1, int(round(wave.shape[-1] / rate)))
        spec = spectral.analyze(wave, cfg)  # [C, F, T]
        mag = spec.abs()
        ref = spectral.reference_db(mag)
        frames = rearrange(spectral.magnitude_to_db(mag, ref, cfg), "c f t -> c t f")
        positions = spectral.stretch_positions(spec.shape[-1], cfg.n_frames(n_model), rate, wave.device)
        out_db = self.transform(frames, positions, torch.full((wave.shape[0],), rate, device=wave.device))
        out_mag = spectral.db_to_magnitude(rearrange(out_db, "c t f -> c f t"), ref)
        phase = spectral.propagate_phase(spec, positions, cfg)
        out = spectral.reconstruct(out_mag, phase, cfg, n_model, self.griffin_lim)
        if sr != cfg.sample_rate:
            out = torchaudio.functional.resample(out, cfg.sample_rate, sr)
        return torch.nn.functional.pad(out, (0, max(0, n_out - out.shape[-1])))[..., :n_out]

    def transform(self, frames: torch.Tensor, positions: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """dB frames [B, T, F] -> stretched dB frames [B, T', F] (encode, time-scale, refine, decode)."""
        ae = self.model.autoencoder
        latents = spectral.time_scale(ae.encode(frames), positions)
        if self.model.refiner is not None:
            latents = self.model.refiner(latents, rate)
        return ae.decode(latents)


_DEFAULT: dict = {}


def stretch(waveform, sr: int, rate: float, checkpoint: str | os.PathLike | None = None, device: str | None = None,
            griffin_lim: int = 16):
    """Stretch ``waveform`` ([N] or [C, N], numpy or torch) by ``rate`` (2 halves the duration)."""
    key = (str(checkpoint or DEFAULT_CHECKPOINT), device, griffin_lim)
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = Stretcher(checkpoint, device, griffin_lim)
    return _DEFAULT[key].stretch(waveform, sr, rate)
