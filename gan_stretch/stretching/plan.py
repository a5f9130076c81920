"""The plan of a stretch: where every output frame reads the input, and what each frame gets.

One function, :func:`make_plan`, for the Stretcher and the training caches
(:mod:`gan_stretch.data.cache`): from the input's analysis (onsets and band levels:
:func:`gan_stretch.stretching.streaming.analysis_pass`) and a time map, the frame positions, the attack
regions played at speed 1 (their first frames restart the phase), the frames read whole near
rate 1 and the model's fade there, the decays' level change between attacks, a refiner's
per-frame features and the attack frames Griffin-Lim holds. :meth:`Plan.block` is one block's view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gan_stretch.dsp import decays, timemap
from gan_stretch.dsp.onset_detection import MEL_BANDS, TRANSIENT_FRAMES
from gan_stretch.dsp.spectrum import SpectralConfig
from gan_stretch.dsp.timemap import MAX_RATE, MIN_RATE

# rates (local rates of the map) within this factor of 1 read whole input frames (no interpolation
# between two), and within MODEL_FADE_RATE the model's change fades in with log(rate) ** 2 (a tenth of
# it at rates 0.94 and 1.06); at rates
# 0.97 to 1.03 steady noise and decaying notes keep their level within 0.1 dB, and the output
# tends to the input as the rate tends to 1 (tests/stretching/test_music_edges.py). The rates scored in the
# documentation (0.5, 0.75, 1.25 and beyond) are outside both.
WHOLE_FRAMES_RATE = 1.05
MODEL_FADE_RATE = 1.2


@dataclass
class BlockView:
    """What the plan says of output frames a..b-1 (each field [b - a], or None: nothing of the kind)."""

    positions: torch.Tensor  # source frame of each output frame, relative to the first frame read
    resets: torch.Tensor | None = None  # bool: the frame's phase restarts as the input's
    attacks: torch.Tensor | None = None  # bool: the frame plays an attack at speed 1
    change: np.ndarray | None = None  # [b - a, M] the decays' level change per band (dB)
    features: torch.Tensor | None = None  # [b - a, K] a refiner's per-frame features
    fade: torch.Tensor | None = None  # the share of the model's change kept
    whole: torch.Tensor | None = None  # bool: the frame reads one whole input frame
    held: torch.Tensor | None = None  # bool: Griffin-Lim leaves the frame as it is


@dataclass
class Plan:
    """Every output frame's plan ([n_out] each, or None: nothing of the kind)."""

    positions: torch.Tensor  # source frame of each output frame (float)
    read: torch.Tensor  # the positions the frames read: rounded where they read whole frames
    resets: torch.Tensor | None  # bool: the frame's phase restarts as the input's
    attacks: torch.Tensor | None  # bool: the frame plays an attack at speed 1
    whole: torch.Tensor | None  # bool: the frame reads one whole input frame (rates near 1)
    fade: torch.Tensor | None  # the share of the model's change kept (rates near 1)
    change: np.ndarray | None  # [n_out, M] the decays' level change per band (dB)
    features: torch.Tensor | None  # [n_out, K] a refiner's per-frame features
    held: torch.Tensor | None  # bool: Griffin-Lim leaves the frame as it is
    rate: float  # the map's mean rate, within the model's range: what a refiner is told

    def block(self, a: int, b: int, first: int) -> BlockView:
        """Output frames a..b-1, reading input frames from ``first`` on."""
        cut = lambda x: None if x is None else x[a:b]  # noqa: E731
        return BlockView(
            self.read[a:b] - first,
            cut(self.resets),
            cut(self.attacks),
            cut(self.change),
            cut(self.features),
            cut(self.fade),
            cut(self.whole),
            cut(self.held),
        )


def make_plan(
    tmap: timemap.TimeMap,
    cfg: SpectralConfig,
    n_in: int,
    onsets=None,
    mel_db: np.ndarray | None = None,
    *,
    span: tuple[int, int] = TRANSIENT_FRAMES,
    dense: bool = False,
    gap_ratio: float | None = None,
    decay: bool = False,
    features: bool = False,
    refine_attacks: bool | None = None,
    device=None,
) -> Plan:
    """The plan of ``tmap`` at the STFT settings ``cfg`` (``n_in`` input frames).

    ``onsets`` (input samples; None: no attacks at speed 1) with ``span``, ``dense`` and
    ``gap_ratio``: see :func:`gan_stretch.dsp.timemap.with_transients`. ``decay``: between attacks,
    each band decays in real time as at the new tempo (:func:`gan_stretch.dsp.decays.corrections` on
    ``mel_db``, the input's band levels). ``features``: a refiner's per-frame features.
    ``refine_attacks``: Griffin-Lim refines every frame (True), none of the attack frames
    (False), or only those where the map speeds the music up (None)."""
    n_out = cfg.n_frames(tmap.n_out)
    fp = timemap.frame_plan(tmap, cfg, n_in, onsets, device, gap_ratio, span, dense)
    positions, resets, attacks = fp.positions, fp.resets, fp.attacks
    # near rate 1 the output tends to the input: frames are read whole (a repeat or a skip every
    # 1 / |1 - rate| frames, where interpolated ones lost 0.5 dB of noise at rate 0.99) and the
    # model's change fades out (its level change at rate 1.001 was +0.4 dB)
    local_rates = tmap.local_rates(n_out, cfg.hop)
    whole, fade = near_one(local_rates)
    whole = torch.from_numpy(whole).to(device)
    read = positions
    if bool(whole.any()):
        read = torch.where(whole, positions.round(), positions)
    else:
        whole = None
    fade = None if fade.min() >= 1 else torch.from_numpy(fade).float().to(device)
    change = None
    if decay and attacks is not None:
        change = decays.corrections(mel_db, positions, attacks, span[0], read_from=MEL_BANDS)
    # a refiner conditioned per frame sees the whole plan's local rates and attacks, sliced per block
    # (from the plan's own positions: near rate 1 the whole frames read repeat or skip one now and then)
    feats = timemap.frame_features(positions, attacks) if features else None
    held = held_frames(attacks, local_rates, refine_attacks)
    rate = min(max(tmap.mean_rate, MIN_RATE), MAX_RATE)
    return Plan(positions, read, resets, attacks, whole, fade, change, feats, held, rate)


def near_one(local_rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames at local rates near 1 ([n]): (read whole input frames, bool; the share of the
    model's change kept, 0 at rate 1 to 1 from MODEL_FADE_RATE on)."""
    distance = np.abs(np.log(local_rates))
    return distance <= math.log(WHOLE_FRAMES_RATE), np.minimum(distance / math.log(MODEL_FADE_RATE), 1.0) ** 2


def held_frames(attacks: torch.Tensor | None, local_rates: np.ndarray, refine_attacks: bool | None):
    """The attack frames Griffin-Lim leaves as they are: none (``refine_attacks`` True), all of
    them (False), or those where the map slows the music down (None)."""
    if attacks is None or refine_attacks is True:
        return None
    if refine_attacks is False:
        return attacks
    return attacks & torch.from_numpy(local_rates < 1).to(attacks.device)
