"""Files stream through in blocks: bounded reads, the same audio as in memory, the input's sample
format kept, and nothing half-written when a block fails."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from gan_stretch import AudioError, Stretcher
from gan_stretch.dsp.band import Band, input_config
from gan_stretch.io.audio import AudioReader

from conftest import music_like

# (sample rate, Griffin-Lim iterations, phase locking): the model's own rate, the 44.1 and 48 kHz
# band mappings (exact and interpolated bins), locking, and the default single iteration
STREAMING_CASES = [
    (22050, 0, False),
    (22050, 1, False),
    (22050, 4, False),
    (44100, 1, False),
    (48000, 1, False),
    (44100, 1, True),
    (48000, 0, True),
]


@pytest.mark.parametrize("sr,griffin_lim,phase_lock", STREAMING_CASES)
@pytest.mark.parametrize("rate", [0.5, 1.7])
def test_streaming_in_small_blocks_matches_one_block(tiny_active, sr, griffin_lim, phase_lock, rate):
    """Blocks of 16 output frames (with their margins) give what a single block gives, with a model
    whose generator changes the latents.

    Tolerance 5e-5 relative RMS: each block continues the previous block's float32 phase from its
    first frame instead of summing the phase advances from the start, which differs in the last
    bits; measured at most 8e-6 over these cases. A block that lost its context or restarted its
    phase is off by order 1.
    """
    x = music_like(3 * sr, sr=sr, channels=2)
    kw = dict(device="cpu", griffin_lim=griffin_lim, phase_lock=phase_lock)
    one = Stretcher(tiny_active, chunk_frames=4096, **kw).stretch(x, sr, rate)
    many = Stretcher(tiny_active, chunk_frames=16, **kw).stretch(x, sr, rate)
    assert many.shape == one.shape == (2, round(3 * sr / rate))
    assert np.sqrt(((many - one) ** 2).mean() / (one**2).mean()) < 5e-5


@pytest.mark.parametrize("rate", [0.5, 1.7])
def test_a_model_conditioned_per_frame_streams_as_one_block(rate):
    """A generator that sees each frame's local rate and attack mask gets them from the whole
    plan in every block: blocks of 16 frames give what one block gives (tolerance as above), and
    the features reach the output (zeroing them changes it)."""
    from conftest import active_model

    model = active_model(frame_features=2)
    torch.nn.init.normal_(model.refiner.frame_inp.weight, std=1.0)
    sr = 22050
    x = music_like(3 * sr, sr=sr, channels=2)
    one = Stretcher(model, device="cpu", chunk_frames=4096, transients=True).stretch(x, sr, rate)
    many = Stretcher(model, device="cpu", chunk_frames=16, transients=True).stretch(x, sr, rate)
    assert np.sqrt(((many - one) ** 2).mean() / (one**2).mean()) < 5e-5
    torch.nn.init.zeros_(model.refiner.frame_inp.weight)
    torch.nn.init.zeros_(model.refiner.frame_inp.bias)
    blind = Stretcher(model, device="cpu", chunk_frames=4096, transients=True).stretch(x, sr, rate)
    assert np.sqrt(((blind - one) ** 2).mean() / (one**2).mean()) > 1e-3


@pytest.fixture(scope="module")
def small_blocks(tiny_model):
    return Stretcher(tiny_model, device="cpu", griffin_lim=1, chunk_frames=64)


def spy_reads(monkeypatch) -> list[int]:
    spans = []
    read = AudioReader.read

    def recording(self, lo, hi):
        spans.append(hi - lo)
        return read(self, lo, hi)

    monkeypatch.setattr(AudioReader, "read", recording)
    return spans


@pytest.mark.parametrize("seconds", [6, 24])
def test_reads_are_blocks_whose_size_does_not_grow_with_the_file(small_blocks, tmp_path, monkeypatch, seconds):
    sr = 44100
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), music_like(seconds * sr, sr=sr, channels=2).T, sr, subtype="FLOAT")
    spans = spy_reads(monkeypatch)
    info = small_blocks.stretch_file(src, dst, 0.5)
    assert {k: info[k] for k in ("frames", "sample_rate", "channels")} == {
        "frames": 2 * seconds * sr,
        "sample_rate": sr,
        "channels": 2,
    }
    cfg = input_config(small_blocks.spectral, sr)
    # the level pass reads 64 frames at a time; a block of 64 output frames at rate 0.5 reads 32
    # input frames plus its margins
    bound = (64 + small_blocks.margin + 3) * cfg.hop + cfg.n_fft
    assert max(spans) <= bound, (max(spans), bound)
    assert len(spans) > 2 * seconds  # many small reads, not one


def test_streamed_file_equals_the_in_memory_stretch(small_blocks, tmp_path):
    sr = 48000  # not a power-of-two multiple of the model's rate: bins are interpolated
    wave = music_like(5 * sr, sr=sr, channels=2)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), wave.T, sr, subtype="FLOAT")
    small_blocks.stretch_file(src, dst, 1.3)
    streamed, sr_out = sf.read(str(dst), dtype="float32", always_2d=True)
    expected = small_blocks.stretch(wave, sr, 1.3)
    assert sr_out == sr and sf.info(str(dst)).subtype == "FLOAT"
    np.testing.assert_allclose(streamed.T, expected, atol=1e-6)


@pytest.mark.parametrize(
    "ext,subtype", [(".flac", "PCM_24"), (".wav", "PCM_24"), (".wav", "FLOAT"), (".flac", "PCM_16")]
)
def test_output_keeps_the_inputs_sample_format(small_blocks, tmp_path, ext, subtype):
    src, dst = tmp_path / f"in{ext}", tmp_path / f"out{ext}"
    sf.write(str(src), music_like(22050), 22050, subtype=subtype)
    small_blocks.stretch_file(src, dst, 2.0)
    assert sf.info(str(dst)).subtype == subtype


def test_a_failing_block_leaves_no_output(small_blocks, tmp_path):
    """NaN in the middle of a long file is found while streaming: an error naming it, no file left."""
    sr = 22050
    wave = music_like(20 * sr)
    wave[15 * sr] = np.nan
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), wave, sr, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        small_blocks.stretch_file(src, dst, 0.8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_silent_file_is_refused(small_blocks, tmp_path):
    src, dst = tmp_path / "in.flac", tmp_path / "out.flac"
    sf.write(str(src), np.zeros(22050, np.float32), 22050)
    with pytest.raises(AudioError, match="silent"):
        small_blocks.stretch_file(src, dst, 0.8)
    assert not dst.exists()


@pytest.mark.parametrize("sr", [11025, 22050, 32000, 44100, 48000, 96000])
def test_input_stft_has_the_models_frame_duration_and_bin_spacing(small_blocks, sr):
    cfg, model = input_config(small_blocks.spectral, sr), small_blocks.spectral
    assert abs(cfg.hop / sr - model.hop / model.sample_rate) < 0.5 / sr * 2
    assert abs(cfg.sample_rate / cfg.n_fft - model.sample_rate / model.n_fft) < 0.01 * model.sample_rate / model.n_fft
    assert cfg.n_fft % cfg.hop == 0  # the fast overlap-add applies


def test_band_mapping_round_trips_model_bins(small_blocks):
    """Model bins -> input bins -> model bins is the identity where the input's band reaches."""
    for sr in (44100, 48000):
        band = Band(small_blocks.spectral, input_config(small_blocks.spectral, sr), "cpu")
        bins = torch.arange(small_blocks.spectral.n_freq, dtype=torch.float32)
        mag = (1.5 + torch.sin(bins / 20))[None, :, None].expand(2, -1, 5)  # a smooth spectrum
        back = band.low(band.combine(mag, torch.zeros(2, band.cfg.n_freq - band.first_high, 5)))
        top = int(0.85 * mag.shape[1])  # below the cross-fade to the time-scaled band
        torch.testing.assert_close(back[:, :top], mag[:, :top], atol=1e-3, rtol=1e-3)


def test_channels_that_are_identical_for_a_while_stay_identical_and_independent(small_blocks):
    """Dual mono for the first half, then the right channel changes: the halves stay identical
    while the input is (to float rounding: each channel is measured against its own peak), and
    each channel equals its own mono stretch throughout."""
    sr = 22050
    left = music_like(6 * sr, seed=1)
    right = left.copy()
    right[3 * sr :] = music_like(3 * sr, seed=2)
    y = small_blocks.stretch(np.stack([left, right]), sr, 0.7)
    same = int(2.5 * sr / 0.7)  # before the change (and its frames' reach)
    np.testing.assert_allclose(y[0, :same], y[1, :same], rtol=0, atol=1e-6)
    assert not np.allclose(y[0, -sr:], y[1, -sr:])
    for c, mono in enumerate((left, right)):
        np.testing.assert_allclose(y[c], small_blocks.stretch(mono, sr, 0.7), atol=1e-5)


def test_a_file_source_reads_what_the_tensor_source_reads(tmp_path):
    """The block loop's two sources (stretching/sources.py): a streamed file gives the samples, the
    zeros beyond both ends, the channel sums and the offset-less audio of the same tensor in memory."""
    from gan_stretch.stretching.sources import InMemory, Streamed

    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal((2, 5000)) + np.array([[0.1], [-0.05]])).astype(np.float32)
    sf.write(tmp_path / "x.wav", wave.T, 22050, subtype="FLOAT")
    dc = torch.tensor([0.1, -0.05], dtype=torch.float64)
    with AudioReader(tmp_path / "x.wav", torch.device("cpu")) as reader:
        file, memory = Streamed(reader, torch.device("cpu")), InMemory(torch.from_numpy(wave))
        assert file.shape == memory.shape == (2, 5000) and not file.in_memory and memory.in_memory
        for lo, hi in ((-300, 200), (100, 4000), (4900, 5600), (6000, 6100)):
            assert torch.equal(file.read(lo, hi), memory.read(lo, hi)), (lo, hi)
        assert torch.allclose(file.channel_sums(700), memory.channel_sums(700), rtol=0, atol=1e-9)
        a, b = file.less(dc).less(dc), memory.less(2 * dc)
        got, want = a.read(-10, 5010), b.read(-10, 5010)
        assert torch.allclose(got, want, atol=1e-6) and got[:, :10].abs().max() == 0 and got[:, -10:].abs().max() == 0
        assert abs(float(a.channel_sums(1000)[0]) / 5000 - float(wave[0].mean() - 0.2)) < 1e-6
