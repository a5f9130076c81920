"""gan-stretch: neural time stretching of music (change duration, keep pitch).

>>> import gan_stretch
>>> y = gan_stretch.stretch(x, sr, rate=2.0)   # x: [N] or [C, N]; y has round(N / 2) samples
"""

from .errors import AudioError, CheckpointError, ConfigError, GanStretchError, RateError, TrainingError
from .pipeline import Stretcher, load_model, stretch

__version__ = "0.1.0"
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
