"""The model file: what a trained stage exports and the Stretcher loads.

A model file is a safetensors file (see checkpoint.py) holding the frozen autoencoder's weights
(``autoencoder.*``), the refiner's (``refiner.*``, none for an autoencoder alone), and in its
metadata the STFT settings, each network's config, the kind (the stage that made it, see
models/registry.py) and what the training run records (its recipe file and settings hash). Training and
inference both use this module; neither imports the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.errors import CheckpointError, ConfigError
from gan_stretch.io import checkpoint
from gan_stretch.models import AutoencoderConfig, FrameAutoencoder
from gan_stretch.models.registry import KINDS, build_refiner

PACKAGED = Path(__file__).parents[1] / "checkpoints"
DEFAULT_CHECKPOINT = PACKAGED / "default.safetensors"  # the best model measured (see the README)


def resolve_checkpoint(name: str | os.PathLike | None) -> Path:
    """A model file path, or the name of a packaged model: ``default`` (the generator, trained without adversarial terms) or ``mapper``
    (its supervised baseline, on the same autoencoder)."""
    if name is None:
        return DEFAULT_CHECKPOINT
    packaged = PACKAGED / f"{name}.safetensors"
    if isinstance(name, str) and "/" not in name and not name.endswith(".safetensors") and packaged.is_file():
        return packaged
    return Path(name)


@dataclass
class Model:
    """What a model file holds: STFT settings, the frozen autoencoder, and an optional refiner."""

    kind: str
    spectral: SpectralConfig
    autoencoder: FrameAutoencoder
    refiner: torch.nn.Module | None
    meta: dict

    @property
    def frame_features(self) -> int:
        """Per-frame inputs its refiner takes beside the latents (gan_stretch.dsp.timemap.frame_features;
        0: none, as every refiner but a generator trained with ``frame_features: true``)."""
        return 0 if self.refiner is None else getattr(self.refiner.cfg, "frame_features", 0)

    def to(self, device: torch.device | str) -> Model:
        """Moves the autoencoder and the refiner to ``device`` (in place); returns the model."""
        for m in (self.autoencoder, self.refiner):
            if m is not None:
                m.to(device)
        return self

    def state(self) -> dict[str, torch.Tensor]:
        tensors = checkpoint.prefixed("autoencoder", self.autoencoder.state_dict())
        if self.refiner is not None:
            tensors.update(checkpoint.prefixed("refiner", self.refiner.state_dict()))
        return tensors


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
            raise ConfigError(f"device {device!r}: no CUDA GPU is available here; use the CPU (device cpu)")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r}: there are {count} CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r}: Apple's MPS backend is not available here; use the CPU (device cpu)")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return dev


def model_meta(kind: str, spec: SpectralConfig, ae: FrameAutoencoder, refiner, extra: dict | None = None) -> dict:
    return {
        "kind": kind,
        "spectral": spec.to_dict(),
        "autoencoder": ae.cfg.to_dict(),
        "refiner": refiner.cfg.to_dict() if refiner is not None else None,
        **(extra or {}),
    }


def save_model(path, model: Model, half: bool = False) -> None:
    """Writes a model file; ``half`` stores weights as float16 (half the size; loaded back as float32)."""
    tensors = model.state()
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    checkpoint.save(path, tensors, model.meta)


def load_model(path: str | os.PathLike) -> Model:
    """Read a model file: the STFT settings, the frozen autoencoder and the refiner.

    Parameters
    ----------
    path : str or os.PathLike
        A model file: ``run_dir/model.safetensors`` of a training run, or a packaged model
        (:func:`resolve_checkpoint` turns ``"default"`` or ``"mapper"`` into its path). Weights
        stored as float16 are loaded as float32.

    Returns
    -------
    Model
        ``kind`` (``"autoencoder"``, ``"mapper"``, ``"gan"`` or ``"generator"``: the stage that
        made it, ``generator`` for a gan-stage run without discriminators; files written before
        that kind existed say ``gan`` for those too; the packaged default says ``generator``),
        ``spectral`` (its STFT settings), ``autoencoder`` and ``refiner`` (None for an
        autoencoder alone; both in eval mode, on the CPU, without gradients) and ``meta`` (the
        file's metadata, with the recipe that trained it). A :class:`Stretcher` takes it as is.

    Raises
    ------
    CheckpointError
        The file is missing, truncated or corrupt, is not a model (a training state, another
        safetensors file), its weights do not fit its config, or they hold NaN or Inf.
    ConfigError
        Its config cannot describe a network (a size out of range, an even kernel), with the
        same message a recipe with that value gets.

    Examples
    --------
    >>> from gan_stretch import load_model
    >>> from gan_stretch.models.model_file import resolve_checkpoint
    >>> model = load_model(resolve_checkpoint("default"))
    >>> model.kind, model.spectral.sample_rate, model.autoencoder.cfg.latent_dim
    ('generator', 22050, 129)
    >>> model.refiner.context_frames       # latent frames each side that reach one output frame
    28
    """
    tensors, meta = checkpoint.load(path)
    kind = meta.get("kind")
    if kind not in KINDS:
        raise CheckpointError(
            f"checkpoint {path} is not a stretch model (kind={kind!r}; expected one of "
            f"{', '.join(KINDS)}); a training-state file is not a model"
        )
    try:
        spec = SpectralConfig.from_dict(meta["spectral"])
        ae = FrameAutoencoder(AutoencoderConfig(**meta["autoencoder"]))
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        ae.load_state_dict(checkpoint.unprefixed("autoencoder", tensors))
        refiner = build_refiner(kind, meta.get("refiner") or {})
        if refiner is not None:
            refiner.load_state_dict(checkpoint.unprefixed("refiner", tensors))
    except ConfigError as e:  # the configs check themselves: the same errors as a recipe gets
        raise ConfigError(f"checkpoint {path}: {e}") from None
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its config ({checkpoint.mismatch(e)})") from None
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(
            f"checkpoint {path} holds NaN or Inf weights ({', '.join(broken[:3])}"
            f"{', ...' if len(broken) > 3 else ''}); it would write noise or silence"
        )
    for m in (ae, refiner):
        if m is not None:
            m.eval().requires_grad_(False)
    return Model(kind, spec, ae, refiner, meta)
