"""Declared settings: a dataclass field with the values it accepts (:func:`setting`) and the check
of every field of a dataclass against its type and those values (:func:`check_fields`).

Recipes (train/recipes.py), model configs (models/) and STFT settings (dsp/spectrum.py) declare their fields
with these; of the package, this module imports errors.py alone, so all of them can import it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, field

import numpy as np

from gan_stretch.errors import ConfigError


def setting(
    default,
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: bool = False,
    below: bool = False,
    choices: tuple | None = None,
    min_items: int = 0,
):
    """A dataclass field (a recipe setting, a network size) with the values it accepts declared
    next to it: a closed range [lo, hi] (``above``/``below`` make an end open), a set of
    ``choices``, and for a list, each item in the range and at least ``min_items`` items.
    :func:`check_fields` (and so load_recipe) enforces them."""
    meta = {"lo": lo, "hi": hi, "above": above, "below": below, "choices": choices, "min_items": min_items}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def check_count(name: str, value, what: str, low: int, high: int) -> None:
    """A setting that must be an integer (not a bool) in [low, high]: ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ConfigError(f"{name} must be {what} in [{low}, {high}], got {value!r}")


def same_as(config, name: str):
    """The setting ``name`` of the dataclass ``config`` (a network's config), declared there once:
    a recipe's field with the same default and the same accepted values."""
    f = config.__dataclass_fields__[name]
    default = f.default_factory() if f.default is MISSING else f.default
    m = f.metadata
    return setting(
        default, m["lo"], m["hi"], above=m["above"], below=m["below"], choices=m["choices"], min_items=m["min_items"]
    )


BIG = 10**9  # a bound no sane value reaches, so typos (steps=1e12) still fail


def coerce(name: str, value, kind):
    """``value`` as the type ``kind`` (bool, int, float, str or a list of one), or a ConfigError naming ``name``."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return [coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
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


def _in_range(value, meta: dict) -> bool:
    lo, hi = meta["lo"], meta["hi"]
    return not (
        (lo is not None and (value <= lo if meta["above"] else value < lo))
        or (hi is not None and (value >= hi if meta["below"] else value > hi))
    )


def _range_text(meta: dict) -> str:
    lo, hi = meta["lo"], meta["hi"]
    return f"{'(' if meta['above'] else '['}{lo:g}, {hi:g}{')' if meta['below'] else ']'}"


def check_fields(obj, what: str = "") -> None:
    """Checks every field of the dataclass ``obj`` against its type and the values its
    :func:`setting` declares, raising one ConfigError (``what`` names ``obj`` in it: a model
    config). Whole numbers given for a float field become floats."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        meta = f.metadata
        try:
            v = coerce(f.name, getattr(obj, f.name), hints[f.name])
            values = v if isinstance(v, list) else [v]
            if any(isinstance(x, float) and not math.isfinite(x) for x in values):
                raise ConfigError(f"{f.name} must be a finite number, got {v}")
            if meta.get("choices") and v not in meta["choices"]:
                raise ConfigError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {v!r}")
            if isinstance(v, list) and len(v) < meta.get("min_items", 0):
                raise ConfigError(f"{f.name} needs at least {meta['min_items']} value(s), got {v}")
            if meta.get("lo") is not None and not all(_in_range(x, meta) for x in values):
                what_value = "every value of " + f.name if isinstance(v, list) else f.name
                raise ConfigError(f"{what_value} must be in {_range_text(meta)}, got {v}")
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}" if what else str(e)) from None
        object.__setattr__(obj, f.name, v)  # frozen dataclasses too
