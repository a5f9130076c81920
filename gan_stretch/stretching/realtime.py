"""Real-time stretching: chunks in, chunks out, with a bounded lookahead and a stated latency.

:meth:`gan_stretch.stretching.stretcher.Stretcher.stream` returns a :class:`Stream`. The offline stretch
reads the whole input first (each channel's loudest bin, every attack, each gap's decay); a
stream decides the same things from what it has heard, looking a bounded distance ahead:

- **levels**: each channel's reference is its loudest bin so far;
- **attacks**: the spectral flux is peak-picked as librosa's ``onset_detect`` does (its
  thresholds, the flux normalised by its largest value so far) once the frames a peak's window
  reads are in, then refined in the time domain as offline;
- **plan**: each attack is played at speed 1 where it lands on the rate's line. Offline, the music
  between two attacks takes up the difference evenly; here, where two attack regions are more
  than ``2 * RETURN_FRAMES`` output frames apart, the output returns to the rate's line within
  ``RETURN_FRAMES`` frames after a region and leaves it ``RETURN_FRAMES`` frames before the next,
  so a frame's place is decided without waiting for the next attack;
- **decays**: each frame's decay is fitted over its gap from the attack to ``FIT_AHEAD`` input
  frames past the frame (offline: the whole gap; the same where the gap ends sooner);
- **blocks**: the model and Griffin-Lim run on blocks of ``block_frames`` output frames
  (:func:`gan_stretch.stretching.blocks.render_block`, as offline) with the offline loop's margin before
  each (the generator's context and Griffin-Lim's reach) and ``lookahead_frames`` after it.

The work is done in steps of ``STEP_FRAMES`` hops of input, each on the input up to its own end
only, so the output does not depend on how the input is cut into chunks; the output is released
``latency`` input samples behind the input fed (a constant delay, as a DAW's latency
compensation needs). The rate may change between chunks: it applies from the chunk's first
sample on. Not done in a stream: DC offsets are left in (offline takes out a mean of the whole
input), and rate 1 is stretched like any other rate (offline returns the input itself).
"""

from __future__ import annotations

import bisect
import math

import librosa
import numpy as np
import torch

from gan_stretch.dsp import decays, onset_detection, spectrum, timemap
from gan_stretch.dsp.band import Band, input_config
from gan_stretch.dsp.onset_detection import MEL_BANDS
from gan_stretch.dsp.timemap import MAX_RATE, MIN_RATE, check_rate
from gan_stretch.errors import AudioError
from gan_stretch.io.audio import check_sample_rate
from gan_stretch.settings import check_count
from gan_stretch.stretching.blocks import SILENT_DB, render_block
from gan_stretch.stretching.magnitudes import channel_reference_db
from gan_stretch.stretching.plan import BlockView, held_frames, near_one
from gan_stretch.stretching.streaming import OverlapAdd

STEP_FRAMES = 4  # input hops per analysis step (the latency's granularity)
RETURN_FRAMES = 4  # output frames over which the output returns to the rate's line after an attack region
# input frames past a frame's own over which its gap's decay is fitted (about 0.19 s); against
# the truth on 5 evaluation sets (15 pieces, rates 0.5 to 2), a gap's first 8 frames alone
# (extrapolated) were 0.82 dB further than offline (log-mel), 16 frames 0.29, 32 frames 0.03;
# the gap so far and 4 / 8 / 32 frames ahead: 0.016 / 0.011 / 0.010
FIT_AHEAD = 8
# output frames a block reads past its end: the generator's context beyond them is cut (the offline
# loop's margin is 33); against the truth as above, 33 / 8 / 4 / 0 frames: 0.012 / 0.011 / 0.010 /
# 0.023 dB further than offline, and 8 instead of 33 takes 0.2 s (rate 0.5) to 1.2 s (rate 2) off
# the latency
LOOKAHEAD_FRAMES = 8
UNBOUNDED = 2**50  # the output's length while the input has not ended


class RateMap:
    """The rate's line: input sample -> output sample, piecewise linear, with a rate per segment
    that starts at an input sample (where a chunk changed the rate)."""

    def __init__(self, rate: float):
        self.src, self.tgt, self.rates = [0.0], [0.0], [rate]

    def change(self, at: float, rate: float) -> None:
        """The rate from input sample ``at`` on (``at`` at or after the last change)."""
        if rate == self.rates[-1]:
            return
        t = self.target(at)
        if at == self.src[-1]:
            self.rates[-1] = rate
            if len(self.rates) > 1 and self.rates[-2] == rate:
                self.src.pop(), self.tgt.pop(), self.rates.pop()
            return
        self.src.append(float(at)), self.tgt.append(t), self.rates.append(rate)

    def target(self, s: float) -> float:
        k = max(0, bisect.bisect_right(self.src, s) - 1)
        return self.tgt[k] + (s - self.src[k]) / self.rates[k]

    def source(self, t: float) -> float:
        k = max(0, bisect.bisect_right(self.tgt, t) - 1)
        return self.src[k] + (t - self.tgt[k]) * self.rates[k]

    def rate_at_source(self, s: float) -> float:
        return self.rates[max(0, bisect.bisect_right(self.src, s) - 1)]

    def rate_at_target(self, t) -> np.ndarray:
        """The rate at output samples ``t`` (an array)."""
        k = np.maximum(np.searchsorted(np.asarray(self.tgt), t, side="right") - 1, 0)
        return np.asarray(self.rates)[k]

    def breaks_between(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """(source, target) of the rate changes strictly between output samples t0 and t1."""
        return [(s, t) for s, t in zip(self.src[1:], self.tgt[1:]) if t0 < t < t1]


class Planner:
    """The plan of a stream: where each output frame reads the input, decided as attacks arrive.

    Knots (input sample, output sample) joined by straight lines; each attack region adds two
    (its ends, played at speed 1). ``free``: the last knot lies on the rate's line, which the
    output follows beyond it until the next attack."""

    def __init__(self, hop: int, span: tuple[int, int], dense: bool, gap_ratio: float | None, ideal: RateMap):
        self.hop, (self.before, self.after), self.dense, self.gap_ratio = hop, span, dense, gap_ratio
        self.ideal = ideal
        self.knots_s, self.knots_t = [0.0], [0.0]
        self.free = True
        self.pending: list[float] = []  # confirmed onsets (input samples) not yet placed or dropped
        self.regions: list[tuple[int, int, float]] = []  # (first frame, last frame, input frame at the last)
        self.top = timemap.DENSE_GAP_RATE if dense else timemap.GAP_RATES[1]
        self.horizon = 0.0  # every onset before this input sample is known

    # how far past an onset the next must be known to shorten its region (dense attacks)
    def lookahead(self, rate: float) -> float:
        if not self.dense:
            return 0.0
        room = (self.before + self.after) * (self.top - 1) * self.hop / max(self.top / rate - 1, 1e-9)
        return math.ceil(room) + self.hop

    def add_onsets(self, onsets) -> None:
        for s in onsets:
            bisect.insort(self.pending, float(s))

    def final_until(self) -> float:
        """The output sample up to which every frame's place is decided."""
        if not self.free:
            return self.knots_t[-1]
        upto = self.horizon if not self.pending else min(self.horizon, self.pending[0])
        if math.isinf(upto):
            return math.inf
        limit = self.ideal.target(upto) - (self.before + RETURN_FRAMES + 1) * self.hop
        return max(limit, self.knots_t[-1])

    def advance(self, horizon: float) -> None:
        """Place or drop every onset whose neighbourhood is known, onsets before ``horizon``
        (input sample; inf: the input has ended) being all known."""
        self.horizon = horizon
        hop, reach = self.hop, (2 * RETURN_FRAMES + self.before) * self.hop
        while True:
            nxt = self.pending[0] if self.pending else None
            ready = nxt is not None and nxt + self.lookahead(self.ideal.rate_at_source(nxt)) <= horizon
            if not self.free:
                end_t = self.knots_t[-1]
                near = nxt is not None and self.ideal.target(nxt) <= end_t + reach
                if near and ready:
                    self._place(self.pending.pop(0))
                    continue
                if not near and (math.isinf(horizon) or self.ideal.source(end_t + reach) < horizon):
                    # no attack close after this region: back to the rate's line
                    t = end_t + RETURN_FRAMES * hop
                    s = self.ideal.source(t)
                    if s > self.knots_s[-1]:
                        self.knots_s.append(s), self.knots_t.append(t)
                    self.free = True
                    continue
                return
            if not ready:
                return
            self._place(self.pending.pop(0))

    def _gap_ok(self, s0, t0, s1, t1) -> bool:
        return t1 > t0 and s1 > s0 and timemap.GAP_RATES[0] <= (s1 - s0) / (t1 - t0) <= self.top

    def _place(self, s: float) -> None:
        hop = self.hop
        spans = [(self.before, self.after)]
        if self.dense and self.before + self.after > 1:  # as timemap.with_transients tries them
            spans = sorted(
                ((i, j) for i in range(self.before + 1) for j in range(self.after + 1) if i + j > 0),
                key=lambda p: (-min(p), -sum(p), -p[0]),
            )
        cap = self.after
        if self.dense and self.pending and self.pending[0] - s <= self.lookahead(self.ideal.rate_at_source(s)):
            g_in = self.pending[0] - s
            g_out = self.ideal.target(self.pending[0]) - self.ideal.target(s)
            room = int(np.floor((self.top * g_out - g_in) / ((self.top - 1) * hop)))
            if 0 < room < self.before + self.after:
                cap = max(0, room - min(self.before, (room + 1) // 2))
        o = self.ideal.target(s)
        o = s + round((o - s) / hop) * hop  # output frames land on whole input frames
        for bb, aa in spans:
            if aa > cap and (bb, aa) != spans[-1]:
                continue
            lo_s, hi_s, lo_t, hi_t = s - bb * hop, s + aa * hop, o - bb * hop, o + aa * hop
            if lo_s < 0 or lo_t < 0:
                continue
            path = [(self.knots_s[-1], self.knots_t[-1])]
            if self.free and lo_t - RETURN_FRAMES * hop > self.knots_t[-1]:  # leave the rate's line
                dep = lo_t - RETURN_FRAMES * hop
                path += [*self.ideal.breaks_between(self.knots_t[-1], dep), (self.ideal.source(dep), dep)]
            path.append((lo_s, lo_t))
            if not all(self._gap_ok(*p, *q) for p, q in zip(path[:-1], path[1:])):
                continue
            if self.gap_ratio is not None:  # the music since the last region, against the rate's line
                s0, t0 = self._last_region_end()
                planned = self.ideal.target(lo_s) - self.ideal.target(s0)
                ratio = (lo_t - t0) / planned if planned > 0 else math.inf
                if not 1 / self.gap_ratio <= ratio <= self.gap_ratio:
                    continue
            for p in path[1:]:
                self.knots_s.append(float(p[0])), self.knots_t.append(float(p[1]))
            self.knots_s.append(hi_s), self.knots_t.append(hi_t)
            first, last = math.ceil(lo_t / hop - 1e-9), math.floor(hi_t / hop + 1e-9)
            self.regions.append((first, last, (lo_s + last * hop - lo_t) / hop))
            self.free = False
            return

    def _last_region_end(self) -> tuple[float, float]:
        if not self.regions:
            return 0.0, 0.0
        first, last, at = self.regions[-1]
        return at * self.hop, last * self.hop

    def end(self, n_in: int, n_out: float) -> None:
        """The input has ended at sample ``n_in``, the output at ``n_out``: the last knot."""
        if self.free:
            for p in self.ideal.breaks_between(self.knots_t[-1], n_out):
                self.knots_s.append(p[0]), self.knots_t.append(p[1])
        if n_out > self.knots_t[-1]:
            self.knots_s.append(float(max(n_in, self.knots_s[-1]))), self.knots_t.append(float(n_out))
        self.free = False

    def positions(self, j0: int, j1: int) -> np.ndarray:
        """Source frame of output frames j0..j1-1 (float64)."""
        t = np.arange(j0, j1, dtype=np.float64) * self.hop
        out = np.interp(t, self.knots_t, self.knots_s)
        if self.free:
            beyond = t > self.knots_t[-1]
            if beyond.any():
                out[beyond] = [self.ideal.source(x) for x in t[beyond]]
        return out / self.hop

    def attacks(self, j0: int, j1: int) -> tuple[np.ndarray, np.ndarray]:
        """(attacks, resets) of output frames j0..j1-1: bool arrays."""
        attacks, resets = np.zeros(j1 - j0, dtype=bool), np.zeros(j1 - j0, dtype=bool)
        for first, last, _ in self.regions:
            if last >= j0 and first < j1:
                attacks[max(first, j0) - j0 : min(last + 1, j1) - j0] = True
                if j0 <= first < j1:
                    resets[first - j0] = True
        return attacks, resets

    def trim(self, t: float) -> None:
        """Forget knots and regions wholly before output sample ``t`` (one of each kept)."""
        k = bisect.bisect_right(self.knots_t, t) - 2
        if k > 0:
            del self.knots_s[:k], self.knots_t[:k]
        f = t / self.hop
        r = 0
        while r + 1 < len(self.regions) and self.regions[r + 1][1] < f - 1:
            r += 1
        del self.regions[:r]


class Stream:
    """A real-time stretch (see the module's text): :meth:`process` takes chunks of input and
    returns the output available so far; :meth:`finish` returns the rest.

    The output trails the input by :attr:`latency` input samples: after ``n`` samples have been
    fed at a constant rate r, the chunks returned hold ``round((n - latency) / r)`` samples in all
    (none before ``n`` passes ``latency``). The concatenated output does not depend on the chunk
    sizes, and what the stream holds stays bounded however long it runs. Silence in gives
    silence out (offline, an input that is silent throughout is refused). Made by
    :meth:`gan_stretch.stretching.stretcher.Stretcher.stream`.
    """

    def __init__(
        self,
        stretcher,
        sr: int,
        channels: int,
        rate: float,
        block_frames: int = 16,
        lookahead_frames: int = LOOKAHEAD_FRAMES,
    ):
        self.st = stretcher
        self.sr = check_sample_rate(sr)
        check_count("channels", channels, "a channel count", 1, 64)
        check_count("block_frames", block_frames, "a frame count", 1, 4096)
        check_count("lookahead_frames", lookahead_frames, "a frame count", 0, stretcher.margin)
        self.channels, self.block = int(channels), int(block_frames)
        # output frames each block reads past its end (the offline loop reads its whole margin: the
        # generator's context and Griffin-Lim's reach)
        self.ahead = int(lookahead_frames)
        self.cfg = cfg = input_config(stretcher.spectral, self.sr)
        self.band = Band(stretcher.spectral, cfg, stretcher.device)
        self.ideal = RateMap(check_rate(rate))
        self.transients = stretcher.transients
        self.plan = Planner(cfg.hop, stretcher.attack_span, stretcher.dense_attacks, stretcher.gap_ratio, self.ideal)
        self.step_samples = STEP_FRAMES * cfg.hop
        # samples: [C, cap] from absolute sample `base`
        self.buf = np.zeros((self.channels, 1 << 16), dtype=np.float32)
        self.base, self.fed, self.steps = 0, 0, 0
        # per input frame from absolute frame `fbase`: mel-band power, the flux, the attack envelope
        self.fbase, self.n_frames = 0, 0
        self.mel = np.zeros((0, 0))
        self.flux = np.zeros(0)
        self.env = np.zeros(0)
        self.peak = None  # [C] loudest model-band power so far
        self.loud_onset, self.loud_all, self.flux_max = 0.0, 0.0, 0.0
        self.decided, self.last_onset = 0, -(10**9)  # frames whose onset decision is made; the last onset frame
        self.fb = onset_detection.mel_filters(stretcher.spectral, self.band.device) if self.transients else None
        high = decays.high_filters(stretcher.spectral, cfg) if self.transients and not self.band.full else None
        self.high, self.high_lo = None, 0
        if high is not None:
            self.high_lo = int(np.flatnonzero(high.sum(axis=1))[0])
            self.high = torch.from_numpy(high[self.high_lo :]).to(self.band.device)
        # librosa.onset.onset_detect's peak picking, in frames of this hop
        sr_, hop = cfg.sample_rate, cfg.hop
        self.pick = dict(
            pre_max=int(0.03 * sr_ // hop),
            post_max=int(0.00 * sr_ // hop + 1),
            pre_avg=int(0.10 * sr_ // hop),
            post_avg=int(0.10 * sr_ // hop + 1),
            wait=int(0.03 * sr_ // hop),
        )
        # frames a decision waits for: the average after a peak, and refine_onsets' reach
        self.decide_lag = max(self.pick["post_avg"], self.pick["post_max"], cfg.n_fft // (2 * hop) + 2)
        self.output = OverlapAdd(cfg, UNBOUNDED)
        self.next_block, self.carry = 0, None  # carry: the propagated phase at the next block's first frame
        self.out_chunks: list[np.ndarray] = []
        self.produced, self.released = 0, 0
        self.late = 0  # output samples asked for by the latency before they were final (none, by design)
        self.ended, self.n_out = False, None
        self.one_d = None

    # ---- what the user sees -----------------------------------------------------------------

    @property
    def latency(self) -> int:
        """How far the output trails the input, in input samples, at the current rate: the
        output for input sample ``x`` comes back once ``x + latency`` samples have been fed."""
        return self.latency_at(self.ideal.rates[-1])

    def latency_at(self, rate: float) -> int:
        cfg = self.cfg
        hops = (
            STEP_FRAMES
            + cfg.n_fft / (2 * cfg.hop)
            + self.decide_lag
            + 2
            + self.plan.lookahead(rate) / cfg.hop
            + (2 * RETURN_FRAMES + self.plan.before + 3) * rate
            + max((self.block + self.ahead + 2) * rate, self.block * rate + FIT_AHEAD + 2)
            + self.plan.before
            + self.plan.after
            + 4
        )
        return int(math.ceil(hops * cfg.hop))

    @torch.no_grad()
    def process(self, chunk, rate: float | None = None) -> np.ndarray:
        """Feed ``chunk`` ([C, k] or, for one channel, [k] float samples; any k, also 0) and,
        with ``rate``, play it and what follows at that rate. Returns the output now final:
        [C, k'] ([k'] for 1-D chunks), float32."""
        if self.ended:
            raise AudioError("the stream has finished; make a new one")
        x = self._check_chunk(chunk)
        if rate is not None:
            self.ideal.change(self.fed, check_rate(rate))
        self._append(x)
        while (self.steps + 1) * self.step_samples <= self.fed:
            self.steps += 1
            self._step(self.steps * self.step_samples)
        want = max(0, round(self.ideal.target(self.fed - self.latency))) if self.fed > self.latency else 0
        return self._release(want)

    @torch.no_grad()
    def finish(self) -> np.ndarray:
        """The rest of the output, once the input has ended."""
        if self.ended:
            raise AudioError("the stream has finished already")
        if self.fed == 0:
            raise AudioError("the stream received no audio (every chunk was empty)")
        self.ended = True
        self.n_out = max(1, round(self.ideal.target(self.fed)))
        self.output.n_out = self.n_out
        self._step(self.fed, final=True)
        return self._release(self.n_out)

    # ---- input -------------------------------------------------------------------------------

    def _check_chunk(self, chunk) -> np.ndarray:
        x = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        one_d = x.ndim == 1
        if one_d and self.channels == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioError(
                f"a chunk must be [channels, samples] with {self.channels} channel(s)"
                + (" (or [samples])" if self.channels == 1 else "")
                + f", got shape {tuple(np.shape(chunk))}"
            )
        if self.one_d is None and x.shape[1]:
            self.one_d = one_d
        if not np.issubdtype(x.dtype, np.floating):
            raise AudioError(f"a chunk must hold float samples, got {x.dtype}")
        if x.size and not np.isfinite(x).all():
            raise AudioError("a chunk holds NaN or Inf samples")
        return x.astype(np.float32, copy=False)

    def _append(self, x: np.ndarray) -> None:
        n = x.shape[1]
        used = self.fed - self.base
        if used + n > self.buf.shape[1]:
            grown = np.zeros((self.channels, max(2 * self.buf.shape[1], used + n)), dtype=np.float32)
            grown[:, :used] = self.buf[:, :used]
            self.buf = grown
        self.buf[:, used : used + n] = x
        self.fed += n

    def read(self, lo: int, hi: int) -> torch.Tensor:
        """Samples lo..hi-1 (zeros before 0 and after the end once the input has ended)."""
        out = np.zeros((self.channels, hi - lo), dtype=np.float32)
        a, b = max(lo, self.base), min(hi, self.fed)
        if lo < self.base and hi > 0 and self.base > 0:
            raise AssertionError("a stream read samples it no longer holds")
        if b > a:
            out[:, a - lo : b - lo] = self.buf[:, a - self.base : b - self.base]
        return torch.from_numpy(out).to(self.band.device)

    # ---- one step ---------------------------------------------------------------------------

    def _step(self, h: int, final: bool = False) -> None:
        cfg = self.cfg
        if final:
            avail = cfg.n_frames(self.fed)
        else:
            avail = (h - cfg.n_fft // 2) // cfg.hop + 1 if h >= cfg.n_fft // 2 else 0
        if avail > self.n_frames:
            self._analyse(self.n_frames, avail)
        if self.transients:
            self._decide(final)
            self.plan.advance(math.inf if final else (self.decided - 1) * cfg.hop)
        else:
            self.plan.horizon = math.inf if final else max(0, (avail - 2) * cfg.hop)
        if final:
            self.plan.end(self.fed, self.n_out)
        self._blocks(final)
        self._trim()

    def _analyse(self, i0: int, i1: int) -> None:
        cfg, band = self.cfg, self.band
        seg = spectrum.segment(self, cfg, i0, i1)
        spec = spectrum.frames(self, cfg, i0, i1, seg)
        power = band.low_power(spec)  # [C, F, T]
        m = power.amax(dim=(-2, -1))
        self.peak = m if self.peak is None else torch.maximum(self.peak, m)
        self.n_frames = i1
        if self.fb is None:
            return
        bands = torch.einsum("cft,fm->tm", power.float(), self.fb)
        if self.high is not None:
            top = spectrum.power(spec[..., self.high_lo : self.high_lo + len(self.high), :]).float()
            bands = torch.cat([bands, torch.einsum("cft,fm->tm", top, self.high)], dim=-1)
        bands = bands.cpu().numpy().astype(np.float64)
        env = onset_detection.attack_envelope(seg, cfg, i0, i1).cpu().numpy()
        self.loud_onset = max(self.loud_onset, float(bands[:, :MEL_BANDS].max()))
        self.loud_all = max(self.loud_all, float(bands.max()))
        prev = self.mel[-1:, :MEL_BANDS] if len(self.mel) else np.zeros((0, MEL_BANDS))
        floor = max(self.loud_onset, 1e-20) * 1e-8  # detect_onsets' floor, from the loudest so far
        db = 10 * np.log10(np.maximum(np.concatenate([prev, bands[:, :MEL_BANDS]]), floor))
        flux = np.maximum(np.diff(db, axis=0), 0).mean(axis=1)
        if not len(prev):
            flux = np.concatenate([[0.0], flux])
        self.mel = bands if not len(self.mel) else np.concatenate([self.mel, bands])
        self.flux = np.concatenate([self.flux, flux])
        self.env = np.concatenate([self.env, env])
        self.flux_max = max(self.flux_max, float(flux.max()))

    def _decide(self, final: bool) -> None:
        """Onset decisions on the frames whose peak-picking windows are in (all, at the end)."""
        p, cfg = self.pick, self.cfg
        upto = self.n_frames if final else self.n_frames - self.decide_lag
        if upto <= self.decided:
            return
        if self.flux_max <= 0:
            self.decided = upto
            return
        ctx = p["pre_avg"] + p["pre_max"] + 2
        w0 = max(self.fbase, self.decided - ctx)
        env = self.flux[w0 - self.fbase :] / (self.flux_max + np.finfo(np.float64).tiny)
        peaks = (
            librosa.util.peak_pick(
                env,
                pre_max=p["pre_max"],
                post_max=p["post_max"],
                pre_avg=p["pre_avg"],
                post_avg=p["post_avg"],
                delta=onset_detection.ONSET_DELTA,
                wait=0,
            )
            + w0
        )
        found = []
        for k in peaks:  # librosa's wait, kept across steps
            if self.decided <= k < upto and k > self.last_onset + p["wait"]:
                found.append(int(k))
                self.last_onset = int(k)
        self.decided = upto
        if found:
            f0 = max(self.fbase, found[0] - 2)
            rel = np.asarray(found) - f0
            env_w = self.env[(f0 - self.fbase) * onset_detection.ENVELOPE_BLOCKS :]
            self.plan.add_onsets(onset_detection.refine_onsets(rel, env_w, cfg) + f0 * cfg.hop)

    # ---- output -----------------------------------------------------------------------------

    def _blocks(self, final: bool) -> None:
        cfg, st = self.cfg, self.st
        margin = st.margin
        n_out_frames = cfg.n_frames(self.n_out) if final else None
        while True:
            j0 = self.next_block * self.block
            if final and j0 >= n_out_frames:
                return
            j1 = j0 + self.block
            a, b = max(0, j0 - margin), j1 + self.ahead
            if final:
                j1, b = min(j1, n_out_frames), min(b, n_out_frames)
            else:
                if self.plan.final_until() < b * cfg.hop:
                    return
            pos = self.plan.positions(a, b + 1)
            if final:
                pos = np.clip(pos, 0, self.n_frames - 1)
                if b == n_out_frames and len(pos) >= 3:  # no frame after the last: its step continues
                    pos[-1] = 2 * pos[-2] - pos[-3]
            stop = int(np.floor(pos[b - 1 - a])) + 2
            if not final and (stop > self.n_frames or not self._decays_final(j0, j1)):
                return
            self._render(a, j0, j1, b, pos, min(stop, self.n_frames), final and j1 == n_out_frames)
            self.next_block += 1

    def _render(self, a: int, j0: int, j1: int, b: int, pos: np.ndarray, stop: int, last: bool) -> None:
        cfg, st, dev = self.cfg, self.st, self.band.device
        ref = channel_reference_db(self.peak.sqrt(), cfg)
        if float(ref.max()) <= SILENT_DB:  # nothing heard yet: silence, and the phase starts afresh
            self.carry = None
            full = torch.zeros(self.channels, cfg.n_freq, b - a, dtype=torch.complex64, device=dev)
        else:
            first = int(np.floor(pos[0]))
            rates = self.ideal.rate_at_target(np.arange(a, b, dtype=np.float64) * cfg.hop)
            plan_pos = pos[: b - a]
            positions = torch.from_numpy(plan_pos).float()
            whole, fade = near_one(rates)
            read = torch.where(torch.from_numpy(whole), positions.round(), positions) if whole.any() else positions
            attacks = resets = change = features = held = att = None
            if self.transients:
                att, res = self.plan.attacks(a, b + 1)
                attacks, resets = torch.from_numpy(att[:-1]).to(dev), torch.from_numpy(res[:-1]).to(dev)
                if st.decays:
                    change = self._change(a, b, pos, att)
                held = held_frames(attacks, rates, st.refine_attacks)
            if st.model.frame_features:  # from the frame after the block too, as offline from the whole plan
                features = timemap.frame_features(torch.from_numpy(pos), None if att is None else torch.from_numpy(att))
                features = features[: b - a].to(dev)
            view = BlockView(
                (read - first).to(dev),
                resets,
                attacks,
                change,
                features,
                None if fade.min() >= 1 else torch.from_numpy(fade).float().to(dev),
                torch.from_numpy(whole).to(dev) if whole.any() else None,
                held,
            )
            spec = spectrum.frames(self, cfg, first, stop)
            rate = torch.full((self.channels,), min(max(float(rates[j0 - a]), MIN_RATE), MAX_RATE), device=dev)
            start = self.carry  # the previous block's phase at frame a
            length = self.n_out if self.ended else UNBOUNDED
            full, phase = render_block(st, spec, view, start, ref, rate, self.band, cfg, length, a)
            nxt = max(0, j0 + self.block - st.margin) - a  # the next block's first frame
            self.carry = phase[..., nxt].clone() if nxt < phase.shape[-1] else None
        _, out = self.output.add(full[..., j0 - a : j1 - a], j0, last=last)
        if out.shape[-1]:
            self.out_chunks.append(out.cpu().numpy())
            self.produced += out.shape[-1]

    def _change(self, a: int, b: int, pos: np.ndarray, att: np.ndarray) -> np.ndarray:
        """The decays' level change [b - a, M] of output frames a..b-1 (pos, att: their places
        and attack flags, one frame further). Each frame's decay is fitted over its gap up to
        FIT_AHEAD frames past the input it reads (offline: over the whole gap)."""
        before = self.st.attack_span[0]
        mel_db = decays.levels_db(self.mel, self.loud_all)
        read_from = MEL_BANDS if MEL_BANDS < self.mel.shape[1] else None
        smooth = decays.smoothed(mel_db[:, read_from:]) if read_from is not None else None
        out = np.zeros((b - a, self.mel.shape[1]))
        regions = self.plan.regions
        for r, (_first, last, anchor) in enumerate(regions):
            g0 = last + 1  # the gap after this region, to the next region's first frame (if placed)
            g1 = regions[r + 1][0] if r + 1 < len(regions) else None
            lo, hi = max(g0, a), b if g1 is None else min(g1, b)
            tail = [] if g1 is None else [f for f in range(g1, g1 + before - 1) if a <= f < b and att[f - a]]
            if hi > lo:
                out[lo - a : hi - a] = self._gap(mel_db, smooth, read_from, anchor, g0, g1, lo, pos[lo - a : hi - a])
            if tail:  # the next region's first frames keep the level the gap's last frame reached
                end = self._gap(mel_db, smooth, read_from, anchor, g0, g1, g1 - 1, self.plan.positions(g1 - 1, g1))
                for f in tail:
                    out[f - a] = np.minimum(end[0], 0)
        return out

    def _gap(self, mel_db, smooth, read_from, anchor: float, g0: int, g1: int | None, f0: int, read) -> np.ndarray:
        """The change [K, M] of gap frames f0.. (reading input frames ``read`` [K]) of the gap from
        output frame g0 (to g1, if placed) after an attack that left the input at ``anchor``."""
        lo = int(np.floor(anchor))
        hi = np.floor(np.asarray(read)).astype(np.int64) + 1 + FIT_AHEAD
        if g1 is not None:  # the gap's end, as offline
            hi = np.minimum(hi, int(np.ceil(self.plan.positions(g1 - 1, g1)[0])) + 1)
        hi = np.minimum(hi, self.n_frames)
        out = np.zeros((len(hi), mel_db.shape[1]))
        fits = hi - lo >= 3  # a suffix of the rows: hi grows along the gap
        if fits.any():
            k0 = int(np.argmax(fits))
            slopes = decays.growing_slopes(mel_db[lo - self.fbase : int(hi.max()) - self.fbase], hi[k0:] - lo)
            read = np.asarray(read, dtype=np.float64)[k0:] - self.fbase
            out[k0:] = decays.gap_change(mel_db, slopes, anchor - self.fbase, read, f0 - g0 + k0, smooth, read_from)
        return out

    def _decays_final(self, j0: int, j1: int) -> bool:
        """Whether the decays of output frames j0..j1-1 are decided: every frame's fit reaches
        FIT_AHEAD frames past its input (or its gap's end) within the plan decided so far."""
        if not (self.transients and self.st.decays) or not self.plan.regions:
            return True
        regions = self.plan.regions
        last = regions[-1]
        if last[1] + 1 >= j1:  # every emitted frame lies in a region or a gap whose end is placed
            return True
        need = float(np.floor(self.plan.positions(j1 - 1, j1)[0])) + FIT_AHEAD
        if need >= self.n_frames:
            return False
        upto = int(self.plan.final_until() / self.cfg.hop)
        return upto > j1 and self.plan.positions(upto, upto + 1)[0] >= need

    def _release(self, want: int) -> np.ndarray:
        """Output samples released..want-1 (as many as are final), in the chunks' layout."""
        if not self.ended and want > self.produced:
            self.late = max(self.late, want - self.produced)
            want = self.produced
        n = max(0, want - self.released)
        parts, got = [], 0
        while got < n and self.out_chunks:
            c = self.out_chunks[0]
            take = min(c.shape[1], n - got)
            parts.append(c[:, :take])
            if take == c.shape[1]:
                self.out_chunks.pop(0)
            else:
                self.out_chunks[0] = c[:, take:]
            got += take
        self.released += got
        out = np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), dtype=np.float32)
        return out[0] if self.one_d else out

    def _trim(self) -> None:
        """Forget the input, frames, knots and regions no future block reads."""
        cfg = self.cfg
        a = max(0, self.next_block * self.block - self.st.margin)
        self.plan.trim(a * cfg.hop)
        keep = int(np.floor(self.plan.positions(a, a + 1)[0])) - 2
        if self.plan.regions:  # the decays read the input from the attack before frame a on
            keep = min(keep, int(np.floor(self.plan.regions[0][2])) - 1)
        keep = min(keep, self.decided - self.pick["pre_avg"] - self.pick["pre_max"] - 8, self.n_frames - 1)
        if keep - self.fbase < 256:
            return
        drop = keep - self.fbase
        self.mel, self.flux = self.mel[drop:], self.flux[drop:]
        self.env = self.env[drop * onset_detection.ENVELOPE_BLOCKS :]
        self.fbase = keep
        sample = keep * cfg.hop - cfg.n_fft // 2
        if sample > self.base:
            cut = sample - self.base
            self.buf[:, : self.fed - sample] = self.buf[:, cut : self.fed - self.base]
            self.base = sample
