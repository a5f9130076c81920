"""The one-call way in: :func:`stretch` (a kept :class:`Stretcher`). The package re-exports it as
``gan_stretch.stretch``, beside ``gan_stretch.Stretcher`` and ``gan_stretch.load_model``.

The Stretcher, with the streamed block loop, is in stretcher.py; the model file in
gan_stretch/models/model_file.py.
"""

from __future__ import annotations

import os

from gan_stretch.models.model_file import resolve_checkpoint
from gan_stretch.stretching.stretcher import Stretcher

_DEFAULT: dict = {}


def stretch(
    waveform,
    sr: int,
    rate: float | None = None,
    *,
    duration: float | None = None,
    time_map=None,
    checkpoint: str | os.PathLike | None = None,
    device: str | None = None,
    griffin_lim: int = 1,
):
    """Stretch a signal: change its duration, keep its pitch.

    The model is loaded on the first call and kept for the next ones with the same
    ``checkpoint``, ``device`` and ``griffin_lim`` (a :class:`Stretcher` gives every other
    setting).

    Parameters
    ----------
    waveform : np.ndarray or torch.Tensor, shape [N] or [C, N]
        Samples at ``sr`` (float in [-1, 1], or integer PCM).
    sr : int
        Sample rate in Hz, 8000 to 192000.
    rate : float or None
        Speed, 0.25 to 4, as in librosa: 2 halves the duration.
    duration : float or None, keyword-only
        The output's duration in seconds, instead of a rate.
    time_map : str, os.PathLike or sequence of (int, int), keyword-only
        A Rubber Band time map file or (source_frame, target_frame) sample pairs
        (see :meth:`Stretcher.stretch`).
    checkpoint : str, os.PathLike or None, keyword-only
        A model file or packaged model name (``"default"``, ``"mapper"``); None: the default.
    device : str or None, keyword-only
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; None: CUDA when available.
    griffin_lim : int, keyword-only
        Griffin-Lim iterations after the phase propagation, 0 to 1000.

    Returns
    -------
    np.ndarray or torch.Tensor, shape [N'] or [C, N']
        float32 samples in the layout and type of ``waveform``; ``N' = round(N / rate)``.

    Raises
    ------
    AudioError
        Empty, silent, transposed or non-finite audio, or a sample rate out of range.
    RateError
        A rate, duration or time map that cannot be honoured.
    CheckpointError
        The model file is missing or not a model.
    ConfigError
        ``device`` or ``griffin_lim`` is not usable.

    See Also
    --------
    Stretcher : every setting, files streamed in blocks.

    Examples
    --------
    >>> import numpy as np
    >>> import gan_stretch
    >>> sr = 22050
    >>> x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr).astype(np.float32)  # 2 s of A4
    >>> y = gan_stretch.stretch(x, sr, rate=2.0, device="cpu")
    >>> y.shape, y.dtype
    ((22050,), dtype('float32'))
    >>> gan_stretch.stretch(x, sr, duration=3.0, device="cpu").shape
    (66150,)
    """
    key = (str(resolve_checkpoint(checkpoint)), device, griffin_lim)
    if key not in _DEFAULT:
        _DEFAULT.clear()
        _DEFAULT[key] = Stretcher(checkpoint, device, griffin_lim)
    return _DEFAULT[key].stretch(waveform, sr, rate, duration=duration, time_map=time_map)
