"""Recipes: YAML files read into dataclasses, with ``key=value`` overrides from the command line.

Unknown keys, wrong types and impossible values are rejected before any work starts.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError


@dataclass
class Recipe:
    stage: str = ""
    data: str = ""  # corpus folder (see gan_stretch.data.corpus)
    run_dir: str = ""  # checkpoints, TensorBoard logs and the exported model go here
    seed: int = 0
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    lr_min_ratio: float = 0.1  # cosine decay to lr * lr_min_ratio
    grad_clip: float = 1.0
    log_every: int = 50
    eval_every: int = 500
    save_every: int = 250
    eval_pieces: int = 2  # held-out pieces scored and logged to TensorBoard at each evaluation
    eval_visqol: bool = True  # ViSQOL in that evaluation (about 1 s per clip on a CPU)


@dataclass
class AutoencoderRecipe(Recipe):
    stage: str = "autoencoder"
    hidden: list[int] = field(default_factory=lambda: [1024, 512])
    latent: int = 128
    mel_weight: float = 1.0  # L1 on mel dB (the benchmark's scale)
    linear_weight: float = 1.0  # L1 on linear-frequency dB
    quiet_db: float = -80.0  # frames whose maximum is below this (re piece max) are not trained on


@dataclass
class SequenceRecipe(Recipe):
    autoencoder: str = ""  # path to the frozen autoencoder's model.safetensors
    window: int = 64  # latent frames per training sequence
    pairs: str = "all"  # which pairs to train on: all | true-tempo | teacher
    spec_weight: float = 1.0  # L1 on decoded mel dB, through the frozen decoder
    spec_frames: int = 512  # frames per batch decoded for that loss
    latent_weight: float = 10.0  # L1 on latents
    init: str = ""  # a model file of this stage and size whose refiner starts the run (fine-tuning)
    transients: bool = False  # train on attacks played at speed 1 (the Stretcher's transients=True)


@dataclass
class MapperRecipe(SequenceRecipe):
    stage: str = "mapper"
    hidden: int = 256


@dataclass
class GanRecipe(SequenceRecipe):
    stage: str = "gan"
    channels: int = 128
    kernel: int = 5
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 1, 2, 4])
    d_channels: int = 128
    d_layers: int = 4
    d_conditional: bool = True
    d_lr: float = 2e-4
    adv_weight: float = 1.0
    fm_weight: float = 2.0
    warmup_steps: int = 200  # generator trains on the regression terms alone before D starts
    ema_decay: float = 0.99
    real: str = "target"  # what D sees as real: target (truly stretched) | natural (any music frames)


STAGES = {"autoencoder": AutoencoderRecipe, "mapper": MapperRecipe, "gan": GanRecipe}

_POSITIVE = {"steps", "batch_size", "lr", "log_every", "eval_every", "save_every", "latent", "window",
             "hidden", "spec_frames", "channels", "kernel", "d_channels", "d_layers", "d_lr"}
_NON_NEGATIVE = {"seed", "grad_clip", "mel_weight", "linear_weight", "spec_weight", "latent_weight",
                 "adv_weight", "fm_weight", "warmup_steps", "eval_pieces", "lr_min_ratio"}
_CHOICES = {"pairs": ("all", "true-tempo", "teacher"), "real": ("target", "natural")}


def _coerce(name: str, value, kind):
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return [_coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported type {kind}")


def _validate(recipe: Recipe) -> None:
    for f in dataclasses.fields(recipe):
        v = getattr(recipe, f.name)
        values = v if isinstance(v, list) else [v]
        if any(isinstance(x, float) and not math.isfinite(x) for x in values):
            raise ConfigError(f"{f.name} must be a finite number, got {v}")
        if f.name in _POSITIVE and any(x <= 0 for x in values):
            raise ConfigError(f"{f.name} must be positive, got {v}")
        if f.name in _NON_NEGATIVE and any(x < 0 for x in values):
            raise ConfigError(f"{f.name} must not be negative, got {v}")
        if f.name in _CHOICES and v not in _CHOICES[f.name]:
            raise ConfigError(f"{f.name} must be one of {', '.join(_CHOICES[f.name])}, got {v!r}")
    for name in ("data", "run_dir") + (("autoencoder",) if isinstance(recipe, SequenceRecipe) else ()):
        if not getattr(recipe, name):
            raise ConfigError(f"recipe needs {name}=...")
    if isinstance(recipe, AutoencoderRecipe) and len(recipe.hidden) != 2:
        raise ConfigError(f"hidden must list two layer widths (6 layers in all), got {recipe.hidden}")
    if isinstance(recipe, GanRecipe):
        if recipe.kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd, got {recipe.kernel}")
        if recipe.window < 2 ** recipe.d_layers:
            raise ConfigError(f"window={recipe.window} is too short for d_layers={recipe.d_layers}")
        if not 0 <= recipe.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {recipe.ema_decay}")


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: cannot read the value") from None
    return out


def load_recipe(path: str | Path | None, overrides: list[str] | dict | None = None) -> Recipe:
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"recipe {path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"recipe {path} must be a mapping of key: value")
    raw.update(overrides if isinstance(overrides, dict) else parse_overrides(overrides or []))
    stage = raw.get("stage")
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    cls = STAGES[stage]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown recipe key(s) for stage {stage}: {', '.join(unknown)}; "
                          f"known keys: {', '.join(sorted(known))}")
    recipe = cls(**{k: _coerce(k, v, hints[k]) for k, v in raw.items()})
    _validate(recipe)
    return recipe


def recipe_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)
