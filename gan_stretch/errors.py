"""One exception family, so callers can catch everything the library raises on bad input."""


class GanStretchError(Exception):
    """Base class for every error gan-stretch raises on purpose."""


class AudioError(GanStretchError, ValueError):
    """Unreadable, empty, silent or non-finite audio, or an output that cannot be written."""


class RateError(GanStretchError, ValueError):
    """A stretch rate, target duration or time map that cannot be honoured."""


class CheckpointError(GanStretchError, ValueError):
    """A checkpoint that is missing, truncated, corrupt or of the wrong kind."""


class ConfigError(GanStretchError, ValueError):
    """A recipe with unknown keys, wrong types or impossible values."""


class TrainingError(GanStretchError, RuntimeError):
    """Training cannot go on (for example a loss became NaN or Inf)."""
