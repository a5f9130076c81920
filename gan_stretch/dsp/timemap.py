"""How output time maps to input time: a constant rate, a target duration, or a time map file.

A time map file uses Rubber Band's format: one ``source_frame target_frame`` pair of sample
indices per line, both strictly increasing. The start (0, 0) and the end (N, N_out) are implied;
N_out comes from the overall rate or duration; without one, the input plays on at rate 1 after
the last anchor.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_stretch.dsp.onset_detection import TRANSIENT_FRAMES
from gan_stretch.errors import RateError

MIN_RATE, MAX_RATE = 0.25, 4.0


def check_rate(rate: float) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise RateError(f"rate must be a number, got {rate!r}") from None
    if not math.isfinite(rate) or not (MIN_RATE <= rate <= MAX_RATE):
        raise RateError(f"rate must be a finite number in [{MIN_RATE}, {MAX_RATE}], got {rate}")
    return rate


def stretch_positions(n_in: int, n_out: int, rate: float, device=None) -> torch.Tensor:
    """Source frame position of each output frame for a constant rate: [n_out] float.

    Output frame j sits at time j*hop; at speed ``rate`` that is source time rate*j*hop.
    """
    pos = torch.arange(n_out, dtype=torch.float64, device=device) * rate
    return pos.clamp_(0, n_in - 1).float()


def time_scale(x: torch.Tensor, positions: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """Linear interpolation along time. x: [..., T, D], positions: [T'] -> [..., T', D] (or
    along another ``dim``: -1 for [..., D, T])."""
    if dim == -1 and x.dim() > 1 and x.stride(-2) == 1:  # STFT layout (bins contiguous): gather whole frames
        return time_scale(x.transpose(-1, -2), positions).transpose(-1, -2)
    n = x.shape[dim]
    positions = positions.to(x.device).clamp(0, n - 1)
    i0 = positions.floor().long().clamp_max(n - 1)
    i1 = (i0 + 1).clamp_max(n - 1)
    frac = (positions - i0.to(positions.dtype)).to(x.dtype)
    frac = frac.unsqueeze(-1) if dim == -2 else frac
    return torch.lerp(x.index_select(dim, i0), x.index_select(dim, i1), frac)


@dataclass(frozen=True)
class TimeMap:
    source: np.ndarray  # [K] sample indices in the input, strictly increasing, from 0 (or a map's start) to n_in
    target: np.ndarray  # [K] sample indices in the output, strictly increasing, from 0 to n_out

    @property
    def n_in(self) -> int:
        return int(self.source[-1])

    @property
    def n_out(self) -> int:
        return int(self.target[-1])

    @property
    def is_identity(self) -> bool:
        """Every output sample is the input sample at the same index (rate 1, or a time map whose
        anchors all lie on the diagonal)."""
        return self.n_in == self.n_out and bool(np.all(self.source == self.target))

    @property
    def mean_rate(self) -> float:
        return (self.n_in - self.source[0]) / self.n_out

    def local_rates(self, n_frames_out: int, hop: int) -> np.ndarray:
        """The map's rate (input samples per output sample) at each output frame: [n_frames_out]."""
        seg = np.searchsorted(self.target, np.arange(n_frames_out, dtype=np.float64) * hop, side="right") - 1
        seg = np.clip(seg, 0, len(self.target) - 2)
        return np.diff(self.source)[seg] / np.diff(self.target)[seg]

    def positions(self, n_frames_out: int, hop: int, n_frames_in: int, device=None) -> torch.Tensor:
        """Source frame position of each output frame: [n_frames_out] float."""
        t = np.arange(n_frames_out, dtype=np.float64) * hop
        src = np.interp(t, self.target, self.source) / hop
        return torch.from_numpy(np.clip(src, 0, n_frames_in - 1)).float().to(device)


GAP_RATES = (MIN_RATE / 2, MAX_RATE * 2)  # local rates allowed between attacks played at speed 1
# with dense attacks, the gaps between attack regions may play this many times faster than the
# input: 16th notes at 120 bpm sped up twice leave 2.7 hops between onsets, room for one frame
# each side of every onset only if the 0.7 hop left between regions plays the rest (5.4 hops of
# input less the regions) that fast; at 8 every other hit was 3 to 5 dB down (eval/dense.py)
DENSE_GAP_RATE = GAP_RATES[1] * 2


def with_transients(
    tmap: TimeMap,
    onsets,
    hop: int,
    before: int,
    after: int,
    gap_ratio: float | None = None,
    dense: bool = False,
) -> tuple[TimeMap, np.ndarray]:
    """``tmap`` with each onset's neighbourhood played at speed 1, as a slower or faster
    performance plays its attacks: input samples [s - before * hop, s + after * hop] of an onset
    at input sample s map to output samples [o - before * hop, o + after * hop], o being where
    ``tmap`` puts s (moved by less than hop / 2 so the region's output frames read whole input
    frames); the stretch happens between these regions. Every onset still lands within half a hop
    of where ``tmap`` puts it, and the ends of ``tmap`` are kept.

    An anchor of ``tmap`` inside a region (an attack on or next to a beat the map pins) is kept
    by the region: o is then where the anchor's own offset puts s, so the anchor's source sample
    lands within half a hop of its target and the attack still plays at speed 1. Anchors outside
    the regions are kept exactly.

    Onsets whose region would not fit (too close to a neighbour, an anchor or an end, or leaving
    a gap outside the rates GAP_RATES, or with ``gap_ratio``, a gap played more than that many
    times faster or slower than ``tmap`` plays it) are left to ``tmap``; with ``dense``, such an
    onset first tries shorter regions (fewer frames before and after it, down to one), and each
    region leaves the next onset about half the room between them (rhythms denser than the
    span: 16th notes sped up, rolls). Returns the new map and the regions' output spans [K, 2] in
    samples (a region's first frame restarts its phase as the input's).
    """
    regions = _Regions(tmap, hop, DENSE_GAP_RATE if dense else GAP_RATES[1], gap_ratio)
    spans = [(before, after)]
    if dense and before + after > 1:  # the longest regions first, as even as possible, then the frames before the onset
        spans = sorted(
            ((i, j) for i in range(before + 1) for j in range(after + 1) if i + j > 0),
            key=lambda p: (-min(p), -sum(p), -p[0]),
        )
    order = np.sort(np.asarray(onsets, dtype=np.float64))
    for n, s in enumerate(order):
        regions.skip_passed()
        cap = regions.room_after(s, order[n + 1], before, after) if dense and n + 1 < len(order) else after
        for bb, aa in spans:
            if aa > cap and (bb, aa) != spans[-1]:
                continue
            placed = regions.place(float(s), bb * hop, aa * hop)
            if placed is not None:
                regions.add(*placed)
                break
    return regions.finish()


class _Regions:
    """The map :func:`with_transients` builds: its knots so far, the next anchor of ``tmap`` not
    yet passed, and the regions' output spans."""

    def __init__(self, tmap: TimeMap, hop: int, top: float, gap_ratio: float | None):
        self.src_anchor, self.tgt_anchor, self.hop, self.top, self.gap_ratio = (
            tmap.source,
            tmap.target,
            hop,
            top,
            gap_ratio,
        )
        self.last_anchor = len(self.src_anchor) - 1  # the end of the map; anchors 1..last_anchor - 1 are the user's
        self.knots_src, self.knots_tgt, self.starts = [float(self.src_anchor[0])], [float(self.tgt_anchor[0])], []
        self.nxt = 1  # the next anchor of tmap not yet passed

    def skip_passed(self) -> None:
        while self.nxt < self.last_anchor and self.src_anchor[self.nxt] <= self.knots_src[-1]:
            self.nxt += 1

    def gap_ok(self, s0, t0, s1, t1) -> bool:
        if not (t1 > t0 and s1 > s0 and GAP_RATES[0] <= (s1 - s0) / (t1 - t0) <= self.top):
            return False
        if self.gap_ratio is None:
            return True
        planned = float(
            np.interp(s1, self.src_anchor, self.tgt_anchor) - np.interp(s0, self.src_anchor, self.tgt_anchor)
        )
        ratio = (t1 - t0) / planned if planned > 0 else np.inf  # > 1: slower than tmap there
        return 1 / self.gap_ratio <= ratio <= self.gap_ratio

    def room_after(self, s: float, s_next: float, before: int, after: int) -> int:
        """The frames after the onset at ``s`` that leave the next onset room for its frames before:
        of the frames that fit between the two (their gap at most ``top`` times faster than the
        input), about half."""
        src_anchor, tgt_anchor, top, hop = self.src_anchor, self.tgt_anchor, self.top, self.hop
        g_in = s_next - s
        g_out = float(np.interp(s_next, src_anchor, tgt_anchor) - np.interp(s, src_anchor, tgt_anchor))
        room = int(np.floor((top * g_out - g_in) / ((top - 1) * hop)))
        if 0 < room < before + after:
            return max(0, room - min(before, (room + 1) // 2))
        return after

    def place(self, s: float, b: float, a: float):
        """(anchors passed before the region, the anchors it replaces, lo_s, hi_s, lo_t, hi_t) of a
        region of ``b`` samples before the onset at ``s`` and ``a`` after it, or None if it does not fit."""
        src_anchor, tgt_anchor, hop = self.src_anchor, self.tgt_anchor, self.hop
        pending = range(self.nxt, self.last_anchor)
        inside = [k for k in pending if s - b <= src_anchor[k] <= s + a]
        if inside:  # the region passes through the anchor nearest the onset
            k = min(inside, key=lambda k: abs(src_anchor[k] - s))
            o = s + float(tgt_anchor[k] - src_anchor[k])
        else:
            o = float(np.interp(s, src_anchor, tgt_anchor))
        o = s + round((o - s) / hop) * hop  # output frames land on whole input frames
        lo_s, hi_s, lo_t, hi_t = s - b, s + a, o - b, o + a
        if lo_s < 0 or lo_t < 0:
            return None
        # every anchor the region replaces lands within half a hop of its target
        if any(abs(o + src_anchor[k] - s - tgt_anchor[k]) > hop / 2 + 1e-6 for k in inside):
            return None
        passed = [k for k in pending if src_anchor[k] < lo_s]
        path = [
            (self.knots_src[-1], self.knots_tgt[-1]),
            *((src_anchor[k], tgt_anchor[k]) for k in passed),
            (lo_s, lo_t),
        ]
        end = self.nxt + len(passed) + len(inside)  # the first anchor after the region (or the map's end)
        if not all(self.gap_ok(*p, *q) for p, q in zip(path[:-1], path[1:])) or not self.gap_ok(
            hi_s, hi_t, src_anchor[end], tgt_anchor[end]
        ):
            return None
        return passed, inside, lo_s, hi_s, lo_t, hi_t

    def add(self, passed, inside, lo_s, hi_s, lo_t, hi_t) -> None:
        self.knots_src += [float(self.src_anchor[k]) for k in passed] + [lo_s, hi_s]
        self.knots_tgt += [float(self.tgt_anchor[k]) for k in passed] + [lo_t, hi_t]
        self.nxt += len(passed) + len(inside)
        self.starts.append((lo_t, hi_t))

    def finish(self) -> tuple[TimeMap, np.ndarray]:
        """The map (the anchors after the last region kept) and the regions' output spans [K, 2]."""
        rest = [k for k in range(len(self.src_anchor)) if self.src_anchor[k] > self.knots_src[-1]]
        knots_src = self.knots_src + [float(self.src_anchor[k]) for k in rest]
        knots_tgt = self.knots_tgt + [float(self.tgt_anchor[k]) for k in rest]
        return TimeMap(np.asarray(knots_src), np.asarray(knots_tgt)), np.asarray(self.starts, dtype=np.float64).reshape(
            -1, 2
        )


@dataclass(frozen=True)
class FramePlan:
    """Where every output frame reads the input, at some STFT settings."""

    positions: torch.Tensor  # [n_out] source frame of each output frame (float)
    resets: torch.Tensor | None = None  # [n_out] bool: the frame's phase restarts as the input's
    attacks: torch.Tensor | None = None  # [n_out] bool: the frame plays an attack at speed 1


def frame_plan(
    tmap: TimeMap,
    cfg,
    n_in: int,
    onsets=None,
    device=None,
    gap_ratio=None,
    span: tuple[int, int] | None = None,
    dense: bool = False,
) -> FramePlan:
    """Source frame position of every output frame of ``tmap`` at the STFT settings ``cfg``
    (n_in input frames). With ``onsets`` (input samples of attacks), each attack is played at
    speed 1 (:func:`with_transients`): its first frame restarts its phase and its frames are
    marked as attacks (``gap_ratio``: see :func:`with_transients`; ``span``: the frames before and
    after each onset played at speed 1, by default :data:`~gan_stretch.dsp.onset_detection.TRANSIENT_FRAMES`,
    the training cache's; the Stretcher passes its own; ``dense``: shorter regions where attacks
    are closer than the span, see :func:`with_transients`)."""

    n_out = cfg.n_frames(tmap.n_out)
    if onsets is None or len(onsets) == 0:
        return FramePlan(tmap.positions(n_out, cfg.hop, n_in, device))
    tmap, spans = with_transients(tmap, np.asarray(onsets), cfg.hop, *(span or TRANSIENT_FRAMES), gap_ratio, dense)
    first = np.ceil(spans[:, 0] / cfg.hop - 1e-9).astype(np.int64)  # each region's first output frame
    last = np.floor(spans[:, 1] / cfg.hop + 1e-9).astype(np.int64)
    resets = torch.zeros(n_out, dtype=torch.bool)
    resets[torch.from_numpy(first[first < n_out])] = True
    inside = np.zeros(n_out + 1, dtype=np.int64)  # +1 at each region's first frame, -1 after its last
    np.add.at(inside, np.minimum(first, n_out), 1)
    np.add.at(inside, np.minimum(last + 1, n_out), -1)
    attacks = torch.from_numpy(np.cumsum(inside)[:n_out] > 0)
    return FramePlan(tmap.positions(n_out, cfg.hop, n_in, device), resets.to(device), attacks.to(device))


# what a refiner conditioned per frame sees of a frame plan (:func:`frame_features`)
FRAME_FEATURES = 2
STEP_RANGE = (1 / 16, 16.0)  # input frames per output frame beyond which the feature saturates


def frame_features(positions: torch.Tensor, attacks: torch.Tensor | None) -> torch.Tensor:
    """Per output frame of a plan, what the music does there: [T', FRAME_FEATURES] float32.

    Column 0: log2 of the input frames the output advances there (0 at speed 1, 1 twice as fast,
    -1 half as fast): with attacks at speed 1, the music between them runs faster or slower than
    the mean rate (at rate 2, 3 to 6.6 times the input's speed on grooves). Column 1: 1 where the
    frame plays an attack at speed 1, else 0. ``positions`` [T'] and ``attacks`` [T'] (bool, or
    None: no attacks) of one whole plan (:func:`frame_plan`); a block's rows are a slice of it.
    """
    pos = positions.detach().double()
    step = torch.ones_like(pos) if len(pos) < 2 else torch.diff(pos, append=(2 * pos[-1:] - pos[-2:-1]))
    out = torch.zeros(len(pos), FRAME_FEATURES, dtype=torch.float32, device=positions.device)
    out[:, 0] = torch.log2(step.clamp(*STEP_RANGE)).float()
    if attacks is not None:
        out[:, 1] = attacks.to(positions.device).float()
    return out


def from_rate(n: int, rate: float) -> TimeMap:
    rate = check_rate(rate)
    return TimeMap(np.array([0.0, n]), np.array([0.0, max(1, round(n / rate))]))


def from_duration(n: int, sr: int, seconds: float) -> TimeMap:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise RateError(f"duration must be a number of seconds, got {seconds!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise RateError(f"duration must be a positive number of seconds, got {seconds}")
    rate = n / (seconds * sr)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise RateError(
            f"duration {seconds:g} s means rate {rate:.3g} for this {n / sr:.3g} s input; "
            f"rates must be in [{MIN_RATE}, {MAX_RATE}]"
        )
    return TimeMap(np.array([0.0, n]), np.array([0.0, max(1, round(seconds * sr))]))


def read(path: str | os.PathLike) -> list[tuple[int, int]]:
    path = Path(path)
    if not path.is_file():
        raise RateError(f"time map not found: {path}")
    pairs = []
    for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            pairs.append((int(parts[0]), int(parts[1])))
        except ValueError:
            raise RateError(f"time map {path} line {no}: expected 'source_frame target_frame', got {line!r}") from None
    if not pairs:
        raise RateError(f"time map {path} has no 'source_frame target_frame' lines")
    return pairs


def from_anchors(n: int, pairs: list[tuple[int, int]], end: TimeMap | None = None) -> TimeMap:
    """A map through ``pairs``; it ends where ``end`` (a rate or duration map) ends, else at local
    rate 1, or at a last pair whose source frame is ``n`` (the input's end).

    As Rubber Band reads a time map: a pair that does not move forward on both axes but goes back
    on neither (an exact duplicate line, a pair with the same source or target frame as the one
    before, ``1000 0`` after the implied start (0, 0)) is skipped, with the pairs before it kept;
    a pair that goes back on either axis is refused. A first pair ``s 0`` starts the output at
    input sample s (the map counts from there, and the input before it is left out, as Rubber Band
    plays such a map)."""
    src, tgt = [0], [0]
    if pairs and pairs[0][1] == 0 and pairs[0][0] > 0:
        src[0] = pairs[0][0]
    for s, t in pairs:
        if s < src[-1] or t < tgt[-1]:
            raise RateError(
                f"time map is not monotonic: {s} {t} comes after {src[-1]} {tgt[-1]}; "
                "source and target frames must both increase line by line"
            )
        if s > src[-1] and t > tgt[-1]:
            src.append(s)
            tgt.append(t)
    src, tgt = np.array(src, dtype=np.float64), np.array(tgt, dtype=np.float64)
    if src[-1] > n:
        raise RateError(f"time map source frame {int(src[-1])} is beyond the input's {n} frames")
    if src[-1] == n and len(src) > 1:  # the map names the input's end: the output ends at its target
        if end is not None and end.n_out != tgt[-1]:
            raise RateError(
                f"time map ends the input at output frame {int(tgt[-1])}, but the rate or duration asks "
                f"for {end.n_out} frames; give one of them"
            )
        n_out = tgt[-1]
        src, tgt = src[:-1], tgt[:-1]
    else:
        n_out = end.n_out if end is not None else tgt[-1] + (n - src[-1])
    if n_out <= tgt[-1]:
        raise RateError(f"time map target frame {int(tgt[-1])} is beyond the output's {int(n_out)} frames")
    src, tgt = np.append(src, n), np.append(tgt, n_out)
    local = np.diff(src) / np.diff(tgt)
    bad = np.flatnonzero((local < MIN_RATE - 1e-9) | (local > MAX_RATE + 1e-9))
    if len(bad):
        k = int(bad[0])
        raise RateError(
            f"time map segment {int(src[k])}->{int(src[k + 1])} plays at rate {local[k]:.3g}; "
            f"local rates must be in [{MIN_RATE}, {MAX_RATE}]"
        )
    return TimeMap(src, tgt)


def resolve(n: int, sr: int, rate=None, duration=None, time_map=None) -> TimeMap:
    """One TimeMap from the ways a user can ask for a stretch (rate, duration, time map file or pairs)."""
    if rate is not None and duration is not None:
        raise RateError("give a rate or a duration, not both")
    end = from_rate(n, rate) if rate is not None else from_duration(n, sr, duration) if duration is not None else None
    if time_map is None:
        if end is None:
            raise RateError("give a rate, a duration or a time map")
        return end
    pairs = read(time_map) if isinstance(time_map, (str, os.PathLike)) else anchors(time_map)
    return from_anchors(n, pairs, end)


def anchors(time_map) -> list[tuple[int, int]]:
    """(source_frame, target_frame) pairs given in code (a list, array or tensor of pairs) as ints;
    raises RateError on anything else (an empty map, non-integer or non-finite frames)."""
    if isinstance(time_map, torch.Tensor):
        time_map = time_map.detach().cpu().numpy()
    try:
        rows = [tuple(p) for p in time_map]
    except TypeError:
        raise RateError(
            f"time_map must be a file path or (source_frame, target_frame) pairs, got {type(time_map).__name__}"
        ) from None
    if not rows:
        raise RateError("time_map has no (source_frame, target_frame) pairs")
    pairs = []
    for i, row in enumerate(rows):
        if len(row) != 2:
            raise RateError(f"time_map entry {i} is {row!r}; expected a (source_frame, target_frame) pair")
        try:
            values = [float(v) for v in row]
        except (TypeError, ValueError):
            raise RateError(f"time_map entry {i} is {row!r}; frames must be numbers") from None
        if not all(math.isfinite(v) and v == int(v) for v in values):
            raise RateError(f"time_map entry {i} is {row!r}; frames must be whole sample indices")
        pairs.append((int(values[0]), int(values[1])))
    return pairs
