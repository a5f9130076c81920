"""Band mapping: an input at any sample rate onto the model's STFT bins and back.

The model was trained at one sample rate (22.05 kHz: bins up to 11 kHz). An input at another
rate is analysed with the model's frame duration and bin spacing (:func:`input_config`), so its
first bins are the model's; :class:`Band` maps between the two sets of bins.
"""

from __future__ import annotations

import torch

from gan_stretch.dsp import spectrum, timemap
from gan_stretch.dsp.spectrum import SpectralConfig


def input_config(model: SpectralConfig, sr: int) -> SpectralConfig:
    """STFT settings at the input's rate with the model's frame duration and frequency spacing:
    a 44.1 kHz input gets n_fft 4096 and hop 1024, whose first 1025 bins are the model's."""
    if sr == model.sample_rate:
        return model
    hop = max(1, round(model.hop * sr / model.sample_rate))
    ratio = model.n_fft / model.hop
    n_fft = round(hop * ratio) if ratio == int(ratio) else 2 * round(model.n_fft * sr / model.sample_rate / 2)
    return SpectralConfig(sample_rate=sr, n_fft=n_fft, hop=hop, db_range=model.db_range)


class Band:
    """Maps the bins of an STFT at the input's rate onto the model's bins and back.

    Both have the same bin spacing (about 10.8 Hz); when the rates are not in a power-of-two
    ratio the spacing differs slightly and bins are linearly interpolated. Model bins above the
    input's Nyquist frequency are silence; input bins above the model's Nyquist frequency come
    from the time-scaled input, cross-faded over the top 10 % of the model's band.
    """

    def __init__(self, model: SpectralConfig, cfg: SpectralConfig, device):
        self.device = torch.device(device)
        self.model, self.cfg = model, cfg
        step = (model.sample_rate / model.n_fft) / (cfg.sample_rate / cfg.n_fft)  # model bin -> input bins
        self.exact = abs(step - 1) < 1e-9
        self.to_input = torch.arange(model.n_freq, dtype=torch.float64) * step  # input bin of each model bin
        self.to_model = torch.arange(cfg.n_freq, dtype=torch.float64) / step  # model bin of each input bin
        nyquist = model.n_freq - 1
        self.full = bool(self.to_model[-1] <= nyquist)  # the model covers the whole input band
        fade = ((nyquist - self.to_model) / (0.1 * nyquist)).clamp(0, 1)
        self.first_high = int((fade >= 1).sum())  # input bins from here on need the time-scaled input
        self.fade = fade.float().to(self.device)[:, None]
        self.to_input, self.to_model = self.to_input.float().to(self.device), self.to_model.float().to(self.device)

    def low(self, mag: torch.Tensor) -> torch.Tensor:
        """Input magnitudes [..., F_in, T] -> the model's bins [..., F_model, T] (zero above the input's band)."""
        n = self.model.n_freq
        if self.exact and mag.shape[-2] >= n:
            return mag[..., :n, :]
        inside = self.to_input <= mag.shape[-2] - 1
        out = timemap.time_scale(mag, self.to_input)  # interpolates along the bin axis here
        return out * inside[:, None]

    def low_power(self, spec: torch.Tensor) -> torch.Tensor:
        """``low(spec.abs()) ** 2`` without the bins the model does not see (and without square
        roots where the bins are exact)."""
        if self.exact and spec.shape[-2] >= self.model.n_freq:
            return spectrum.power(spec[..., : self.model.n_freq, :])
        return self.low(spectrum.magnitude(spec)).square_()

    def from_model(self, mag: torch.Tensor) -> torch.Tensor:
        """Model-bin magnitudes [..., F_model, T] -> input bins [..., min(F_in, F_model), T]
        (exact bins), or [..., F_in, T] (interpolated; meaningful within the model's band)."""
        if self.exact:
            return mag[..., : self.cfg.n_freq, :]
        return timemap.time_scale(mag, self.to_model)

    def combine(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The model's magnitudes [..., F_model, T] below its Nyquist frequency, ``high`` (the
        input bins from ``first_high`` on, [..., F_in - first_high, T]) above, cross-faded."""
        k, n = self.first_high, self.cfg.n_freq
        out = low.new_empty(*low.shape[:-2], low.shape[-1], n).transpose(-1, -2)  # the STFT's layout
        model = self.from_model(low)
        out[..., :k, :] = model[..., :k, :]
        top = min(model.shape[-2], n)
        fade = self.fade[k:top]
        out[..., k:top, :] = torch.lerp(high[..., : top - k, :], model[..., k:top, :], fade)
        out[..., top:, :] = high[..., top - k :, :]
        return out
