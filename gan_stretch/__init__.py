"""gan-stretch: neural time stretching of music (change duration, keep pitch).

>>> import gan_stretch
>>> y = gan_stretch.stretch(x, sr, rate=2.0)   # x: [N] or [C, N]; y has round(N / 2) samples
"""

from gan_stretch.errors import AudioError, CheckpointError, ConfigError, GanStretchError, RateError, TrainingError
from gan_stretch.models.model_file import load_model
from gan_stretch.stretching.pipeline import stretch
from gan_stretch.stretching.stretcher import Stretcher
from gan_stretch.version import __version__  # noqa: F401  (the package version)

__all__ = [
    "stretch",
    "Stretcher",
    "load_model",
    "GanStretchError",
    "AudioError",
    "RateError",
    "CheckpointError",
    "ConfigError",
    "TrainingError",
]
