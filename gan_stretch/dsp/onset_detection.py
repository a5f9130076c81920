"""Onsets: where attacks start (spectral flux on mel bands, peak picking), refined in the time
domain, and the frames played at speed 1 around them."""

from __future__ import annotations

import functools

import numpy as np
import torch

from gan_stretch.dsp.spectrum import SpectralConfig, frames, segment

# frames before / after an onset played at speed 1 by the Stretcher: every frame whose window
# (n_fft = 4 hops) reaches the onset, so the output is the input's own for a hop either side of it.
# Three each side (the output the input's for two hops) left the music between attacks less room:
# measured on held-out grooves and ensembles, 0.11 to 0.36 dB further on log-mel and up to 0.08
# lower on ViSQOL over the five rates (most at rate 2), level on classical excerpts
# (docs/results/attack-span/)
ATTACK_FRAMES = (2, 2)
# the regions of the training loop's latent cache (gan_stretch.data.cache): what the packaged
# models learned with; a cache made with other regions would need another digest
TRANSIENT_FRAMES = (3, 3)


MEL_BANDS = 40  # mel bands of mel_filters: onset detection and the decays' levels


@functools.lru_cache(maxsize=8)
def mel_filters(cfg: SpectralConfig, device) -> torch.Tensor:
    """MEL_BANDS mel bands over the bins of ``cfg`` [F, MEL_BANDS], for onset detection."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(
        cfg.n_freq, 0.0, cfg.sample_rate / 2, MEL_BANDS, cfg.sample_rate, norm="slaney", mel_scale="slaney"
    ).to(device)


# librosa's peak-picking threshold on the normalised flux (its default: 0.07). Measured on held-out
# renders of four sets (classical on two unseen sound banks, grooves, ensembles; 8 pieces, 5 rates,
# the packaged default): 0.07 found 65-73 % of the score's onsets on classical music; 0.045 gave
# log-mel equal or lower on every set (OPL-3 classical 3.15 -> 2.98 dB) and stronger attacks on
# three of four; 0.03 gained more on two sets and lost log-mel on grooves.
ONSET_DELTA = 0.045


def detect_onsets(mel_power, cfg: SpectralConfig):
    """Frames where attacks start, from mel power frames [T, M] (all channels summed): librosa's
    peak picking on the spectral flux of log-mel (floored 80 dB below the loudest band)."""
    import librosa

    mel_power = np.asarray(mel_power, dtype=np.float64)
    db = 10 * np.log10(np.maximum(mel_power, max(float(mel_power.max()), 1e-20) * 1e-8))
    flux = np.concatenate([[0.0], np.maximum(np.diff(db, axis=0), 0).mean(axis=1)])
    if flux.max() <= 0:
        return np.zeros(0, dtype=np.int64)
    return librosa.onset.onset_detect(
        onset_envelope=flux, sr=cfg.sample_rate, hop_length=cfg.hop, units="frames", delta=ONSET_DELTA
    )


def onsets_of(wave: torch.Tensor, cfg: SpectralConfig) -> np.ndarray:
    """Input samples where the attacks of ``wave`` [..., N] start (the Stretcher's detection, at
    the model's own rate): flux peaks, then refined in the time domain."""
    n = cfg.n_frames(wave.shape[-1])
    seg = segment(wave, cfg, 0, n)
    mag = frames(wave, cfg, 0, n, seg).abs()
    power = torch.einsum("...ft,fm->...tm", mag.float() ** 2, mel_filters(cfg, mag.device))
    found = detect_onsets(power.reshape(-1, *power.shape[-2:]).sum(0).cpu().numpy(), cfg)
    return refine_onsets(found, attack_envelope(seg, cfg, 0, n).cpu().numpy(), cfg)


def attack_envelope(seg: torch.Tensor, cfg: SpectralConfig, first: int, stop: int) -> torch.Tensor:
    """Energy of the differentiated signal (attacks stand out of held notes) in blocks of
    ``hop / 16`` samples (rounded; any hop) over samples first * hop .. stop * hop of ``seg``
    (:func:`segment`), channels summed: [(stop - first) * 16]. Locates an attack to a few
    milliseconds, where a frame only says which 93 ms window holds it."""
    own = seg[..., cfg.n_fft // 2 - 1 : cfg.n_fft // 2 + (stop - first) * cfg.hop]
    diff = (own[..., 1:] - own[..., :-1]).reshape(-1, (stop - first) * cfg.hop)
    blocks = (stop - first) * ENVELOPE_BLOCKS
    energy = diff.double().square_().sum(0)  # float64: block sums exact for quiet blocks
    if cfg.hop % ENVELOPE_BLOCKS == 0:  # blocks of equal length
        return energy.reshape(blocks, cfg.hop // ENVELOPE_BLOCKS).sum(-1)
    edges = block_start(torch.arange(blocks + 1, device=seg.device), cfg)
    which = torch.repeat_interleave(torch.arange(blocks, device=seg.device), edges[1:] - edges[:-1])
    return energy.new_zeros(blocks).index_add_(0, which, energy)


ENVELOPE_BLOCKS = 16  # blocks of attack_envelope per hop


def block_start(index, cfg: SpectralConfig):
    """First sample of block ``index`` of :func:`attack_envelope` (an int or an integer tensor or array)."""
    return (index * cfg.hop + ENVELOPE_BLOCKS // 2) // ENVELOPE_BLOCKS


def refine_onsets(onset_frames, envelope: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    """Sample positions of attacks: within the frames' reach around each detected onset frame
    (peak picking on a frame's spectral flux fires as soon as an attack enters the window, one to
    two hops early), the block of :func:`attack_envelope` where its energy in dB rises most above
    the loudest of the eight blocks before it."""
    db = 10 * np.log10(np.maximum(envelope, max(float(envelope.max()), 1e-30) * 1e-10))
    out = []
    for k in np.asarray(onset_frames, dtype=np.int64):
        lo = max(8, (k * cfg.hop - cfg.hop) * ENVELOPE_BLOCKS // cfg.hop)
        hi = min(len(db) - 1, (k * cfg.hop + cfg.n_fft // 2 + cfg.hop) * ENVELOPE_BLOCKS // cfg.hop)
        if hi <= lo:
            out.append(k * cfg.hop)
            continue
        idx = np.arange(lo, hi)
        before = np.max(np.stack([db[idx - d] for d in range(1, 9)]), axis=0)
        after = (db[idx] + db[idx + 1]) / 2
        out.append(int(block_start(int(idx[np.argmax(after - before)]), cfg)))
    return np.asarray(out, dtype=np.int64)
