"""The real-time mode (Stretcher.stream): chunks of any size give one output, the output trails
the input by the latency it reports, a rate changed mid-stream lands where it was asked, and bad
chunks are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from gan_stretch import Stretcher
from gan_stretch.errors import AudioError, ConfigError, RateError

SR = 22050


@pytest.fixture(scope="module")
def default():
    return Stretcher(device="cpu")


def music(seconds: float, sr: int = SR, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Decaying harmonic notes, each with a click at its onset, every 0.37 s (seeded): [C, N]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n)
    for on in np.arange(0.05, seconds - 0.2, 0.37):
        i, f = int(on * sr), 220 * 2 ** (rng.integers(0, 12) / 12)
        t = np.arange(n - i) / sr
        x[i:] += 0.15 * sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) * np.exp(-3 * t)
        x[i : i + 200] += 0.4 * rng.standard_normal(200) * np.exp(-np.arange(200) / 40)
    out = np.stack([x, 0.7 * np.roll(x, 50)])[:channels]
    return out.astype(np.float32)


def streamed(stretcher, x, rate, chunk, sr=SR, **kw):
    s = stretcher.stream(sr, x.shape[0], rate, **kw)
    parts = [s.process(x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)]
    return np.concatenate([*parts, s.finish()], axis=1), s


@pytest.mark.parametrize("rate", [0.8, 1.5])
def test_chunk_sizes_give_the_same_output(default, rate):
    """Chunks of 1, 64, 1000 and 4096 samples give the output of one big chunk, to the bit."""
    x = music(3.0)
    whole, _ = streamed(default, x, rate, x.shape[1])
    assert whole.shape == (2, round(x.shape[1] / rate))
    assert np.isfinite(whole).all() and np.abs(whole).max() > 0.05
    for chunk in (1, 64, 1000, 4096) if rate == 0.8 else (64, 4096):
        got, _ = streamed(default, x, rate, chunk)
        assert np.array_equal(got, whole), chunk


@pytest.mark.parametrize("rate", [0.5, 1.25, 2.0])
def test_the_output_trails_the_input_by_the_latency_reported(default, rate):
    """After n samples in, round((n - latency) / rate) samples have come out (none before n
    passes the latency), and the output was final every time it was asked for."""
    x = music(6.0, seed=1)
    s = default.stream(SR, 2, rate)
    fed = got = 0
    for i in range(0, x.shape[1], 1500):
        got += s.process(x[:, i : i + 1500]).shape[1]
        fed = min(i + 1500, x.shape[1])
        assert got == (round((fed - s.latency) / rate) if fed > s.latency else 0), (fed, got, s.latency)
    assert s.late == 0
    got += s.finish().shape[1]
    assert got == round(x.shape[1] / rate)
    # the latency is stated in samples and grows with the rate (the model's context is in output frames)
    assert 0 < default.stream(SR, 2, 0.5).latency < default.stream(SR, 2, 2.0).latency


def test_a_rate_changed_mid_stream_lands_where_it_was_asked(default):
    """Clicks every 0.25 s; rate 0.8 for the first 2 s, then 1.6: each click comes out where the
    two rates put it (within a hop) and the output's length is that of both parts."""
    n, change = 4 * SR, 2 * SR
    x = np.zeros((1, n), dtype=np.float32)
    clicks = np.arange(int(0.1 * SR), n - SR // 4, SR // 4)
    for c in clicks:
        x[0, c : c + 64] = np.hanning(64) * 0.8
    s = default.stream(SR, 1, 0.8)
    parts = [s.process(x[:, i : i + 700]) for i in range(0, change, 700)]
    parts += [s.process(x[:, change : change + 900], rate=1.6)]
    parts += [s.process(x[:, i : i + 700]) for i in range(change + 900, n, 700)]
    y = np.concatenate([*parts, s.finish()], axis=1)[0]
    assert len(y) == round(change / 0.8 + (n - change) / 1.6)
    for c in clicks:
        want = c / 0.8 if c < change else change / 0.8 + (c - change) / 1.6
        lo, hi = int(want) - 1024, int(want) + 1024
        peak = lo + int(np.argmax(np.abs(y[lo:hi])))
        assert abs(peak - (want + 32)) < 512, (c, peak, want)


def test_a_stream_stays_near_the_offline_stretch(default):
    """On music, the stream's log-mel spectrogram is within 1.5 dB of the offline stretch's on
    average (what bounded lookahead costs there; docs/results/realtime/ measures both against
    the truth), and far closer than a stretch without the model (the time-scaled input)."""
    import librosa

    x = music(5.0, seed=2)

    def logmel(y):
        m = librosa.feature.melspectrogram(y=y.mean(0), sr=SR, n_fft=2048, hop_length=512, n_mels=64)
        return np.maximum(10 * np.log10(m + 1e-10), -80)

    rate = 0.75
    off = default.stretch(x, SR, rate)
    got, _ = streamed(default, x, rate, 2048)
    plain = Stretcher(default.model, device="cpu", transients=False, decays=False, residual=False)
    base = plain.stretch(x, SR, rate)
    near = np.abs(logmel(got) - logmel(off)).mean()
    assert near < 1.5, near
    assert near < np.abs(logmel(base) - logmel(off)).mean()


def test_silence_first_then_music(default):
    """A stream that starts with a second of silence (a live input) gives silence (below -80 dB,
    as offline), then music; the length is right and nothing is NaN."""
    x = np.concatenate([np.zeros((1, SR), np.float32), music(2.0, channels=1)], axis=1)
    y, _ = streamed(default, x, 1.25, 512)
    assert y.shape == (1, round(x.shape[1] / 1.25))
    assert np.isfinite(y).all()
    assert np.abs(y[:, : int(0.6 * SR)]).max() < 1e-4 and np.abs(y).max() > 0.05


def test_mono_chunks_come_back_mono(default):
    x = music(1.5, channels=1)[0]
    s = default.stream(SR, 1, 1.5)
    parts = [s.process(x[i : i + 3000]) for i in range(0, len(x), 3000)]
    y = np.concatenate([*parts, s.finish()])
    assert y.ndim == 1 and len(y) == round(len(x) / 1.5)


def test_bad_chunks_and_settings_are_refused_by_name(default):
    s = default.stream(SR, 2, 1.25)
    with pytest.raises(AudioError, match="2 channel"):
        s.process(np.zeros((3, 100), np.float32))
    with pytest.raises(AudioError, match="NaN or Inf"):
        s.process(np.full((2, 100), np.nan, np.float32))
    with pytest.raises(AudioError, match="float"):
        s.process(np.zeros((2, 100), np.int16))
    with pytest.raises(RateError):
        s.process(np.zeros((2, 100), np.float32), rate=9.0)
    with pytest.raises(AudioError, match="no audio"):
        default.stream(SR, 2, 1.25).finish()
    s.process(np.zeros((2, 100), np.float32) + 0.1)
    s.finish()
    with pytest.raises(AudioError, match="finished"):
        s.process(np.zeros((2, 100), np.float32))
    with pytest.raises(RateError):
        default.stream(SR, 2, 0.0)
    with pytest.raises(ConfigError, match="channels"):
        default.stream(SR, 0, 1.25)
    with pytest.raises(AudioError):
        default.stream(1000, 2, 1.25)


# --- the command line ----------------------------------------------------------------------------


def cli(*argv, **kw):
    """``python -m gan_stretch.cli ARGV`` (one thread, no GPU) as a subprocess.Popen."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(root)}
    return subprocess.Popen([sys.executable, "-m", "gan_stretch.cli", *map(str, argv)], env=env, **kw)


def wav_stream(x: np.ndarray, sr: int) -> bytes:
    """x [C, N] as a 16-bit WAV stream whose header says "length unknown" (as sox writes to a pipe)."""
    import io

    from gan_stretch.io.wavpipe import WavWriter

    buf = io.BytesIO()
    WavWriter(buf, sr, x.shape[0], 16).write(x)
    return buf.getvalue()


def test_the_cli_streams_standard_input_to_standard_output(default):
    """``gan-stretch stretch - - --rate 1.25 --realtime``: output comes out while standard input
    is still open (a live pipe), and the whole equals the API's stream of the same 16-bit samples."""
    import select
    import subprocess
    import threading

    from gan_stretch.io.wavpipe import decode

    x = music(6.0, seed=3)
    data = wav_stream(x, SR)
    head = 44 + 4 * 4 * SR  # the header and the first 4 s
    p = cli("stretch", "-", "-", "--rate", "1.25", "--realtime", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rest_sent = threading.Event()

    def feed():  # a thread: the pipes fill both ways
        p.stdin.write(data[:head])
        p.stdin.flush()
        rest_sent.wait(300)
        p.stdin.write(data[head:])
        p.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    early = b""
    while len(early) < 44 + 4 * SR // 2 and select.select([p.stdout], [], [], 120)[0]:
        got = p.stdout.read1(1 << 16)
        if not got:
            break
        early += got
    rest_sent.set()
    assert len(early) >= 44 + 4 * SR // 2, "no output before the input ended"
    rest = p.stdout.read()
    assert p.wait(timeout=120) == 0
    out = decode((early + rest)[44:], "<i2", 2)
    assert out.shape == (2, round(x.shape[1] / 1.25))
    sixteen = decode(data[44:], "<i2", 2)  # what the command read
    want, _ = streamed(default, sixteen, 1.25, 4096)
    assert np.abs(out - np.clip(want, -1, 1 - 2**-15)).max() <= 2**-15 + 1e-6


def test_the_cli_streams_a_file_to_a_file(tmp_path, default):
    """A file in, a file out (the input's sample format), equal to the API's stream; the output
    appears only when whole."""
    import soundfile as sf

    x = music(3.0, seed=4)
    src, dst = tmp_path / "in.flac", tmp_path / "out.flac"
    sf.write(src, x.T, SR, subtype="PCM_24")
    p = cli("stretch", src, dst, "--tempo", "120:150", "--realtime", "--block-frames", "8")
    assert p.wait(timeout=120) == 0
    y, sr = sf.read(dst, always_2d=True)
    assert sf.info(dst).subtype == "PCM_24" and sr == SR
    read, _ = sf.read(src, dtype="float32", always_2d=True)
    want, _ = streamed(default, read.T, 1.25, 4096, block_frames=8)
    assert y.T.shape == want.shape and np.abs(y.T - want).max() < 2**-22


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--duration", "2"], "--duration needs the whole input"),
        (["--rate", "1.25", "--time-map", "map.txt"], "--time-map needs the whole input"),
        (["--rate", "1.25", "--pitch", "2"], "--pitch needs the whole input"),
        ([], "needs --rate or --tempo"),
        (["--rate", "1.25", "--block-frames", "0"], "--block-frames must be"),
    ],
)
def test_the_cli_says_what_realtime_cannot_do(tmp_path, extra, message):
    import subprocess

    import soundfile as sf

    sf.write(tmp_path / "in.wav", music(0.5).T, SR)
    p = cli(
        "stretch", tmp_path / "in.wav", tmp_path / "out.wav", "--realtime", *extra, stderr=subprocess.PIPE, cwd=tmp_path
    )
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and message in err.decode(), err.decode()
    assert not (tmp_path / "out.wav").exists()


def test_a_long_stream_holds_a_bounded_amount(default):
    """A live stream runs for hours: what it holds (input samples, per-frame analysis, plan knots
    and regions) stays bounded however long it has run (here 15 s and 45 s of music)."""
    x = music(10.0, seed=5)
    s = default.stream(SR, 2, 0.8)
    held = []
    for seconds in (15, 45):
        while s.fed < seconds * SR:
            for i in range(0, x.shape[1], 4096):
                s.process(x[:, i : i + 4096])
        held.append((s.fed - s.base, len(s.mel), len(s.plan.knots_s), len(s.plan.regions)))
    for samples, frames, knots, regions in held:
        assert samples < 10 * SR and frames < 10 * SR / 512 and knots < 64 and regions < 32, held


def test_a_decay_in_two_stages_follows_the_offline_fit(default):
    """Notes 1.3 s apart that fall fast for 0.2 s, then slowly (a piano, a room): slowed down
    twice, the stream's decays, fitted over each gap so far and a few frames ahead, stay within
    1 dB (log-mel) of offline's whole-gap fit (extrapolating the first frames' fast fall over
    the gap lost 3 dB)."""
    import librosa

    rng = np.random.default_rng(0)
    n = 8 * SR
    x = np.zeros(n)
    for on in np.arange(0.1, 7.5, 1.3):
        i, f = int(on * SR), 220 * 2 ** (rng.integers(0, 12) / 12)
        t = np.arange(n - i) / SR
        env = np.where(t < 0.2, 10 ** (-30 * t / 20), 10 ** ((-6 - 3 * (t - 0.2)) / 20))
        x[i:] += 0.3 * sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) * env
    x = np.stack([x, 0.8 * x]).astype(np.float32)

    def logmel(y):
        m = librosa.feature.melspectrogram(y=y.mean(0), sr=SR, n_fft=2048, hop_length=512, n_mels=64)
        return np.maximum(10 * np.log10(m + 1e-10), -80)

    got, _ = streamed(default, x, 0.5, 2048)
    assert np.abs(logmel(got) - logmel(default.stretch(x, SR, 0.5))).mean() < 1.0


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_a_wav_stream_arriving_in_odd_pieces_reads_whole(tmp_path, subtype):
    """A WAV file (with its data length and, for float, a fact chunk, as sox and soundfile write
    them) through a pipe in 1001-byte pieces: every sample comes back, as soundfile reads them."""
    import os
    import threading

    import soundfile as sf

    from gan_stretch.io.wavpipe import WavReader

    x = music(0.5, seed=6) * 0.9
    path = tmp_path / "in.wav"
    sf.write(path, x.T, SR, subtype=subtype)
    want, _ = sf.read(path, dtype="float32", always_2d=True)
    data = path.read_bytes()
    r, w = os.pipe()

    def feed():
        for i in range(0, len(data), 1001):
            os.write(w, data[i : i + 1001])
        os.close(w)

    threading.Thread(target=feed, daemon=True).start()
    reader = WavReader(r)
    parts = []
    while (chunk := reader.read()) is not None:
        parts.append(chunk)
    os.close(r)
    got = np.concatenate(parts, axis=1)
    assert reader.sample_rate == SR and reader.channels == 2
    np.testing.assert_allclose(got, want.T, atol=1e-7)


def test_standard_input_that_is_not_wav_is_named(tmp_path):
    import subprocess

    for data in (b"hello\n", b""):
        p = cli(
            "stretch",
            "-",
            "-",
            "--rate",
            "1.2",
            "--realtime",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, err = p.communicate(data, timeout=120)
        assert p.returncode != 0 and "it is not WAV" in err.decode(), err.decode()


@pytest.mark.parametrize("block", [1, 64])
def test_any_block_size_gives_the_whole_output(default, block):
    """block_frames from 1 to beyond the generator's context: the output has its length and
    holds the music (a block longer than the context once failed on the last block)."""
    x = music(2.0, seed=8)
    y, s = streamed(default, x, 1.25, 1000, block_frames=block)
    assert y.shape == (2, round(x.shape[1] / 1.25)) and np.isfinite(y).all() and np.abs(y).max() > 0.05
    assert s.late == 0


@pytest.mark.parametrize("subtype, bits", [("PCM_U8", 16), ("PCM_24", 24), ("FLOAT", 32)])
def test_the_cli_writes_standard_output_in_the_inputs_sample_format(subtype, bits):
    """8-bit in: 16-bit out (a WAV stream's least); 24-bit in: 24-bit out; float in: float out;
    every sample there."""
    import io
    import struct
    import subprocess

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, music(1.0, seed=9).T, SR, format="WAV", subtype=subtype)
    p = cli("stretch", "-", "-", "--rate", "1.25", "--realtime", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = p.communicate(buf.getvalue(), timeout=120)
    assert p.returncode == 0
    tag, channels, sr = struct.unpack("<HHI", out[20:28])
    assert (struct.unpack("<H", out[34:36])[0], channels, sr) == (bits, 2, SR)
    assert tag == (3 if bits == 32 else 1)
    assert (len(out) - 44) // (2 * bits // 8) == round(SR / 1.25)
