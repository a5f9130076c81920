"""Recipes: YAML files read into dataclasses, with ``key=value`` overrides from the command line.

Unknown keys, wrong types and impossible values are rejected before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from gan_stretch.errors import ConfigError
from gan_stretch.models import (
    AutoencoderConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    MapperConfig,
    SpectrogramDiscriminatorConfig,
)
from gan_stretch.settings import BIG, check_fields, coerce, same_as, setting


@dataclass
class Recipe:
    stage: str = ""
    data: str = ""  # corpus folder (see gan_stretch.data.corpus)
    run_dir: str = ""  # checkpoints, TensorBoard logs and the exported model go here
    seed: int = setting(0, 0, 2**32 - 1)
    steps: int = setting(1000, 1, BIG)
    batch_size: int = setting(64, 1, 65536)
    lr: float = setting(1e-3, 0, 10, above=True)
    lr_min_ratio: float = setting(0.1, 0, 1)  # cosine decay to lr * lr_min_ratio
    grad_clip: float = setting(1.0, 0, 1e6)
    log_every: int = setting(50, 1, BIG)
    eval_every: int = setting(500, 1, BIG)
    save_every: int = setting(250, 1, BIG)
    eval_pieces: int = setting(2, 0, 10000)  # held-out pieces scored and logged to TensorBoard at each evaluation
    eval_visqol: bool = True  # ViSQOL in that evaluation (about 1 s per clip on a CPU)
    # a run_dir's checkpoint is resumed only when it was written with the same training settings
    # (training_settings); force: resume it whatever its settings (continuing an old run under new ones)
    resume: str = setting("auto", choices=("auto", "force"))


@dataclass
class AutoencoderRecipe(Recipe):
    stage: str = "autoencoder"
    hidden: list[int] = same_as(AutoencoderConfig, "hidden")
    latent: int = same_as(AutoencoderConfig, "latent")
    mel_weight: float = setting(1.0, 0, 1e6)  # L1 on mel dB (the benchmark's scale)
    linear_weight: float = setting(1.0, 0, 1e6)  # L1 on linear-frequency dB
    quiet_db: float = setting(-80.0, -200, 0)  # frames whose maximum is below this (re piece max) are not trained on


@dataclass
class SequenceRecipe(Recipe):
    autoencoder: str = ""  # path to the frozen autoencoder's model.safetensors
    window: int = setting(64, 1, 8192)  # latent frames per training sequence
    pairs: str = setting("all", choices=("all", "true-tempo", "teacher"))  # which pairs to train on
    spec_weight: float = setting(1.0, 0, 1e6)  # L1 on decoded mel dB, through the frozen decoder
    spec_frames: int = setting(512, 1, 10**7)  # frames per batch decoded for that loss
    latent_weight: float = setting(10.0, 0, 1e6)  # L1 on latents
    init: str = ""  # a model file of this stage and size whose refiner starts the run (fine-tuning)
    # with init: the model file's refiner is this much the init's and the rest the tuned one's, weight
    # by weight (weight-space ensembling, WiSE-FT: fine-tuning on new data loses some of the init's
    # robustness to what that data lacks, the average keeps it); 0: the tuned refiner alone
    init_blend: float = setting(0.0, 0, 1, below=True)
    transients: bool = False  # train on attacks played at speed 1 (the Stretcher's transients=True)
    # train with the Stretcher's real-time decays in the loop (needs transients): the refiner learns
    # what remains after them instead of learning the decays a second time
    decays: bool = False
    residual_loss: bool = False  # the mel loss on the spectrum users get (residual decoding), not the decoded latents
    # with transients: the frames before and after each onset played at speed 1 in the training
    # pairs (the packaged models: 3 and 3, spectral.TRANSIENT_FRAMES; the Stretcher plays 2 and 2)
    attack_span: list[int] = setting([3, 3], 0, 8, min_items=2)


@dataclass
class MapperRecipe(SequenceRecipe):
    stage: str = "mapper"
    hidden: int = same_as(MapperConfig, "hidden")


@dataclass
class GanRecipe(SequenceRecipe):
    stage: str = "gan"
    # the networks' sizes: their configs' defaults and ranges (gan_stretch.models)
    channels: int = same_as(GeneratorConfig, "channels")
    kernel: int = same_as(GeneratorConfig, "kernel")
    dilations: list[int] = same_as(GeneratorConfig, "dilations")
    d_channels: int = same_as(DiscriminatorConfig, "channels")
    d_layers: int = same_as(DiscriminatorConfig, "layers")
    d_conditional: bool = True
    d_lr: float = setting(2e-4, 0, 10, above=True)
    adv_weight: float = setting(1.0, 0, 1e6)
    fm_weight: float = setting(2.0, 0, 1e6)
    warmup_steps: int = setting(200, 0, BIG)  # generator trains on the regression terms alone before D starts
    ema_decay: float = setting(0.99, 0, 1, below=True)
    spec_adv_weight: float = setting(0.0, 0, 1e6)  # adversarial term of the spectrogram discriminator
    spec_fm_weight: float = setting(0.0, 0, 1e6)  # its feature matching
    spec_d_channels: int = same_as(SpectrogramDiscriminatorConfig, "channels")
    spec_d_batch: int = setting(8, 1, 65536)  # windows of each batch the spectrogram discriminator sees
    # its change plane (each frame's change from the one before, times this; 0: none, as it was
    # studied first; gan_stretch.models.SpectrogramDiscriminatorConfig.delta): without it the
    # discriminator did not see frame-to-frame texture (docs/results/recorded-adversarial/probe)
    spec_delta: float = setting(0.0, 0, 1000)
    real: str = setting(
        "target", choices=("target", "natural")
    )  # what D sees as real: target (truly stretched) | natural (any music frames)
    # the generator also sees, per frame, how fast the input is read there and whether the frame
    # plays an attack at speed 1 (timemap.frame_features; needs transients), not only the mean rate
    frame_features: bool = False
    # Unpaired adversarial training on recorded music (gan_stretch.data.recordings): a
    # discriminator of its own sees training-split recordings at their own tempo as real and the
    # generator's stretch of other training-split recordings (at the training pairs' rates) as
    # fake; the generator gets only its adversarial and feature-statistics terms there (no truth).
    # (a true-tempo corpus also serves: its tempo-1 renders alone, unlabeled audio of one sound bank)
    recordings: str = ""  # a recordings corpus folder; empty: off
    rec_adv_weight: float = setting(0.0, 0, 1e6)
    rec_fm_weight: float = setting(0.0, 0, 1e6)  # feature statistics (mean activations) matching
    rec_batch: int = setting(8, 1, 65536)  # recording windows per step on each side (real, fake)
    # what that discriminator reads: latent (the latent sequences) | spectrogram (the dB frames users
    # get: a recording's own frames as real, the residual decoding of the stretch, decays included, as fake)
    rec_view: str = setting("latent", choices=("latent", "spectrogram"))
    # the spectrogram view also sees each frame's change from the one before, times this (0: not;
    # gan_stretch.models.SpectrogramDiscriminatorConfig.delta)
    rec_delta: float = setting(10.0, 0, 1000)
    # the spectrogram view relative to each window's own mean, bin by bin (no level or long-term
    # spectrum cue; gan_stretch.models.SpectrogramDiscriminatorConfig.relative)
    rec_relative: bool = False
    # held-out naturalness as training goes: every this many steps (0: never) a small two-sample
    # test (gan_stretch.measures.naturalness) on a fixed subset of held-out recordings stretched by the EMA
    # generator through the Stretcher, logged as naturalness/rate_<r> (0.5: indistinguishable)
    naturalness_every: int = setting(0, 0, BIG)
    naturalness_excerpts: int = setting(8, 2, 10000)  # held-out excerpts (one per recording)
    naturalness_seconds: float = setting(4.0, 0.5, 600)  # of each excerpt, from its start
    naturalness_steps: int = setting(150, 1, 100000)  # classifier training steps per fold
    naturalness_rates: list[float] = setting([0.5, 2.0], 0.25, 4.0, min_items=1)

    def discriminators(self) -> list[str]:
        """The discriminators this recipe trains: each whose adversarial or feature-matching weight
        is non-zero (``latent``, ``spectrogram``, ``recordings``); none: the generator alone."""
        weights = {
            "latent": self.adv_weight + self.fm_weight,
            "spectrogram": self.spec_adv_weight + self.spec_fm_weight,
            "recordings": self.rec_adv_weight + self.rec_fm_weight,
        }
        return [name for name, w in weights.items() if w > 0]


def _validate(recipe: Recipe) -> None:
    check_fields(recipe)
    for name in ("data", "run_dir") + (("autoencoder",) if isinstance(recipe, SequenceRecipe) else ()):
        if not getattr(recipe, name):
            raise ConfigError(f"recipe needs {name}=...")
    if isinstance(recipe, AutoencoderRecipe) and len(recipe.hidden) != 2:
        raise ConfigError(f"hidden must list two layer widths (6 layers in all), got {recipe.hidden}")
    if isinstance(recipe, SequenceRecipe) and recipe.decays and not recipe.transients:
        raise ConfigError("decays=true needs transients=true (the decays start from the attack regions)")
    if isinstance(recipe, SequenceRecipe) and recipe.init_blend and not recipe.init:
        raise ConfigError(f"init_blend={recipe.init_blend} needs init=... (the model file it blends with)")
    if isinstance(recipe, SequenceRecipe) and len(recipe.attack_span) != 2:
        raise ConfigError(f"attack_span must be two frame counts [before, after], got {recipe.attack_span}")
    if isinstance(recipe, GanRecipe):
        if recipe.kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd, got {recipe.kernel}")
        if recipe.window < 2**recipe.d_layers:
            raise ConfigError(f"window={recipe.window} is too short for d_layers={recipe.d_layers}")
        if recipe.frame_features and not recipe.transients:
            raise ConfigError("frame_features=true needs transients=true (the attack regions are one of the features)")
        uses = [n for n in ("rec_adv_weight", "rec_fm_weight", "naturalness_every") if getattr(recipe, n)]
        if uses and not recipe.recordings:
            raise ConfigError(f"{uses[0]}={getattr(recipe, uses[0])} needs recordings=... (a recordings corpus folder)")
    _check_run_dir(recipe.run_dir)


def _check_run_dir(run_dir: str) -> None:
    """run_dir can be created and written: probed with a temporary folder in it, or in its
    nearest existing parent, removed at once (a permission check alone passes for root on /proc)."""
    path = Path(run_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ConfigError(f"run_dir={run_dir}: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".gan-stretch-probe-", dir=existing))
    except OSError as e:
        raise ConfigError(f"run_dir={run_dir} cannot be created or written in {existing} ({e.strerror})") from None


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


def read_recipe_file(path: str | Path, _seen: tuple = ()) -> dict:
    """The key: value mapping of a recipe file, with its ``base:`` (a recipe file, relative to this
    one) read first and overridden by this file's keys: a variant lists only its differences."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}" + (f" (the base of {_seen[-1]})" if _seen else ""))
    if path.resolve() in _seen:
        raise ConfigError(f"recipe {path} is its own base (through {' -> '.join(map(str, _seen))})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path} must be a mapping of key: value")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"recipe {path}: base must be the path of a recipe file, got {base!r}")
    return {**read_recipe_file(path.parent / base, (*_seen, path.resolve())), **raw}


# the recipe of each training stage, by the stage's name (gan_stretch.train.stages declares the stages themselves)
RECIPES: dict[str, type[Recipe]] = {cls.stage: cls for cls in (AutoencoderRecipe, MapperRecipe, GanRecipe)}


def load_recipe(path: str | Path | None, overrides: list[str] | dict | None = None) -> Recipe:
    raw: dict = read_recipe_file(path) if path is not None else {}
    given = overrides if isinstance(overrides, dict) else parse_overrides(overrides or [])
    raw.update(given)
    stage = raw.get("stage")
    if stage is None:
        where = f"recipe {path}" if path is not None else "the recipe"
        raise ConfigError(f"{where} names no stage; add 'stage: NAME' (one of {', '.join(RECIPES)})")
    if stage not in RECIPES:
        raise ConfigError(f"stage must be one of {', '.join(RECIPES)}, got {stage!r}")
    cls = RECIPES[stage]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown recipe key(s) for stage {stage}: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
    recipe = cls(**{k: coerce(k, v, hints[k]) for k, v in raw.items()})
    _validate(recipe)
    recipe._file = None if path is None else str(path)  # recorded in the model file (recipe_source)
    recipe._overrides = [f"{k}={v}" for k, v in given.items()]  # likewise
    return recipe


def recipe_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)


# settings added after models were shipped, at the value that reproduces what those runs did:
# left out of the hash at that value, so the hashes recorded in earlier model files still match
LATER_SETTINGS = {
    "decays": False,
    "attack_span": [3, 3],
    "frame_features": False,
    "init_blend": 0.0,
    "recordings": "",
    "rec_adv_weight": 0.0,
    "rec_fm_weight": 0.0,
    "rec_batch": 8,
    "rec_view": "latent",
    "rec_delta": 10.0,
    "rec_relative": False,
    "spec_delta": 0.0,
    "naturalness_every": 0,
    "naturalness_excerpts": 8,
    "naturalness_seconds": 4.0,
    "naturalness_steps": 150,
    "naturalness_rates": [0.5, 2.0],
    "resume": "auto",
}

# settings that do not change what a run trains: where it writes, how far it goes (a rerun with more
# steps continues the run), what it logs and evaluates on the way, and how it resumes
RUN_SETTINGS = frozenset(
    {
        "run_dir",
        "steps",
        "log_every",
        "save_every",
        "eval_every",
        "eval_pieces",
        "eval_visqol",
        "naturalness_every",
        "naturalness_excerpts",
        "naturalness_seconds",
        "naturalness_steps",
        "naturalness_rates",
        "resume",
    }
)


def training_settings(recorded: Recipe | dict) -> dict:
    """The settings of a recipe (or of the recipe dict a checkpoint recorded) that decide what its
    run trains: all but RUN_SETTINGS, with a setting added since a recording was made at the value
    that reproduces what that run did (LATER_SETTINGS)."""
    settings = recipe_dict(recorded) if isinstance(recorded, Recipe) else dict(recorded)
    settings = {**{k: v for k, v in LATER_SETTINGS.items() if k not in settings}, **settings}
    return {k: v for k, v in settings.items() if k not in RUN_SETTINGS}


def settings_hash(settings: dict) -> str:
    """A short hash of a settings dict (key order aside), as recorded in checkpoints and model files."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def changed_settings(old: dict, new: dict) -> list[str]:
    """``key old -> new`` for each setting that differs between two settings dicts (sorted by key)."""
    shown = lambda d, k: repr(d[k]) if k in d else "unset"  # noqa: E731
    return [f"{k} {shown(old, k)} -> {shown(new, k)}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def recipe_source(recipe: Recipe) -> dict:
    """What a model file records of the recipe that made it: the file named (base files resolved
    into it), a hash of every setting the run used, overrides included, and the overrides given
    beside the file (``key=value``; left out where none were)."""
    settings = {k: v for k, v in recipe_dict(recipe).items() if LATER_SETTINGS.get(k, ...) != v}
    source = {"file": getattr(recipe, "_file", None), "sha256": settings_hash(settings)}
    if getattr(recipe, "_overrides", None):
        source["overrides"] = list(recipe._overrides)
    return source
