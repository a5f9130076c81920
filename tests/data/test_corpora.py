"""True-tempo corpora of every family: classical pieces, ensembles, generated grooves.

MIDI-level tests run anywhere; renders need fluidsynth (and a GM soundfont) or timidity with
freepats, and skip with the reason when those are missing.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from gan_stretch.cli.main import main
from gan_stretch.data.corpus import build_true_tempo
from gan_stretch.data.ensembles import FAMILIES, orchestrate, split_parts
from gan_stretch.data.grooves import BPM_RANGE, DENSE_BPM_RANGE, HAT, SNARE, STYLES, groove
from gan_stretch.data.items import choose_render, item_seed
from gan_stretch.data.manifest import Corpus
from gan_stretch.data.render import (
    CEILING_DB,
    DRUM_CHANNEL,
    find_soundfont,
    music21_midi,
    normalise,
    note_onsets,
    perform,
    render,
    timidity_config,
)
from gan_stretch.errors import GanStretchError

SR = 22050


def _has_soundfont() -> bool:
    try:
        find_soundfont()
        return True
    except GanStretchError:
        return False


def _has_freepats() -> bool:
    try:
        find_soundfont(synth="timidity")
        return True
    except GanStretchError:
        return False


needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not _has_soundfont(),
    reason="fluidsynth or a General MIDI soundfont is missing (apt-get install fluidsynth timgm6mb-soundfont)",
)
needs_timidity = pytest.mark.skipif(
    shutil.which("timidity") is None or not _has_freepats(),
    reason="timidity or freepats is missing (apt-get install timidity freepats)",
)


def midi_bytes(midi: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    midi.save(file=buf)
    return buf.getvalue()


def family_midi(family: str):
    """(MIDI at tempo 1, program or channel -> program) of one small piece of ``family``."""
    if family == "groove":
        g = groove(11, 4.0)
        return g.midi(), g.programs
    if family == "ensemble":
        midi, parts = split_parts(music21_midi("bach/bwv66.6"))
        return midi, orchestrate(parts, np.random.default_rng(0))[1]
    return music21_midi("bach/bwv66.6"), 0


# --- grooves -----------------------------------------------------------------------------------


def test_groove_is_determined_by_its_seed():
    assert midi_bytes(groove(7, 6.0).midi()) == midi_bytes(groove(7, 6.0).midi())
    assert midi_bytes(groove(7, 6.0).midi()) != midi_bytes(groove(8, 6.0).midi())


def test_groove_drums_play_on_channel_10_and_the_band_on_its_own_programs():
    for seed in range(8):
        g = groove(seed, 6.0)
        by_channel = {}
        for n in g.notes:
            by_channel.setdefault(n.channel, []).append(n.pitch)
        assert set(by_channel) == {0, 1, 2, DRUM_CHANNEL}  # bass, comping, lead, kit
        assert set(g.programs) == {0, 1, 2}  # the kit keeps GM's standard drum set
        assert all(35 <= p <= 82 for p in by_channel[DRUM_CHANNEL])  # GM percussion keys
        assert max(by_channel[0]) < min(by_channel[2])  # the bass lies below the lead
        perf = perform(g.midi(), g.programs, 6.0, 1.0)
        changes = {m.channel: m.program for m in perf.tracks[0] if m.type == "program_change"}
        assert changes == g.programs  # none on the drum channel: a program change there would swap the kit
        assert note_onsets(perf)[1]  # drum hits are listed


def test_dense_grooves_play_16th_hats_and_rolls_up_to_180_bpm():
    """The dense style (never drawn) plays a hi-hat on every 16th step, snare rolls in the fills, at
    100 to 180 bpm; the seed's other choices (key, instruments) are those of the same seed's groove,
    and the corpus family dense-groove renders it."""
    grooves = [groove(seed, 6.0, style="dense") for seed in range(30)]
    bpms = [g.bpm for g in grooves]
    assert all(DENSE_BPM_RANGE[0] <= b <= DENSE_BPM_RANGE[1] for b in bpms) and max(bpms) > 165
    for seed, g in enumerate(grooves[:5]):
        hats = sorted({n.step for n in g.notes if n.channel == DRUM_CHANNEL and n.pitch == HAT})
        assert set(range(16)) <= set(hats)  # a whole bar of 16ths
        snare_steps = sorted({n.step for n in g.notes if n.channel == DRUM_CHANNEL and n.pitch == SNARE})
        assert any(b - a == 1 for a, b in zip(snare_steps, snare_steps[1:]))  # 16th snare strokes
        plain = groove(seed, 6.0)
        assert (g.key, g.minor, g.programs[2]) == (plain.key, plain.minor, plain.programs[2])
    assert "dense" not in STYLES  # the drawn styles (and every existing groove) stay as they were
    from gan_stretch.data.items import FAMILIES as CORPUS_FAMILIES
    from gan_stretch.data.items import plan_jobs

    assert "dense-groove" in CORPUS_FAMILIES
    assert plan_jobs("dense-groove", 2, None, 1, None, 6.0, 0)[1].key == "dense-groove-1"


def test_groove_tempo_range_and_styles():
    grooves = [groove(seed, 4.0) for seed in range(60)]
    bpms = [g.bpm for g in grooves]
    assert all(BPM_RANGE[0] <= b <= BPM_RANGE[1] for b in bpms)
    assert min(bpms) < 90 and max(bpms) > 140  # the whole range is used
    assert {g.style for g in grooves} == set(STYLES)
    for g in grooves[:5]:
        tempo = next(m.tempo for m in g.midi().tracks[0] if m.type == "set_tempo")
        assert tempo == round(60e6 / g.bpm)
    # the MIDI covers the excerpt: the last note starts within a bar of its end
    for g in grooves:
        last = max(n.start for n in g.notes) * 60 / g.bpm
        assert 4.0 - 240 / g.bpm < last


@pytest.mark.parametrize("style,offbeat_steps,delay", [("pop", 2, 0.1), ("funk", 1, 0.05)])
def test_swing_delays_the_offbeats_only(style, offbeat_steps, delay):
    """Swing 0.6 moves each off-beat (eighths in pop, sixteenths in funk) 0.6/6 of its pair later;
    the beats stay where they were, and nothing else the seed draws changes."""
    straight = groove(3, 6.0, style=style, swing=0.0)
    swung = groove(3, 6.0, style=style, swing=0.6)
    assert len(straight.notes) == len(swung.notes)
    moved = 0
    for a, b in zip(straight.notes, swung.notes):
        assert (a.step, a.pitch, a.velocity, a.channel) == (b.step, b.pitch, b.velocity, b.channel)
        pair = 2 * offbeat_steps
        if a.step % pair == 0:
            assert b.start == pytest.approx(a.start, abs=1e-9)
        elif a.step % pair == offbeat_steps:
            assert b.start - a.start == pytest.approx(delay, abs=1e-9)
            moved += 1
    assert moved > 10


# --- ensembles ---------------------------------------------------------------------------------


def test_ensemble_parts_get_their_own_channels_and_programs():
    midi, parts = split_parts(music21_midi("bach/bwv66.6"))
    assert len(parts) == 4 and len(set(parts)) == 4 and DRUM_CHANNEL not in parts
    mean = {
        c: np.mean([m.note for t in midi.tracks for m in t if m.type == "note_on" and m.velocity and m.channel == c])
        for c in parts
    }
    assert [mean[c] for c in parts] == sorted(mean.values(), reverse=True)  # soprano first, bass last
    maps, families = set(), set()
    for seed in range(20):
        family, programs = orchestrate(parts, np.random.default_rng(seed))
        assert set(programs) == set(parts)
        assert len(set(programs.values())) > 1, (family, programs)  # never one program for the piece
        assert programs[parts[-1]] in FAMILIES[family][2]  # the lowest part plays a bass instrument
        maps.add(tuple(programs.values()))
        families.add(family)
    assert len(maps) > 10 and len(families) >= 4  # drawn per item
    perf = perform(midi, programs, 5.0, 1.0)
    assert {m.channel: m.program for m in perf.tracks[0] if m.type == "program_change"} == programs


# --- true tempo --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["classical", "ensemble", "groove"])
def test_performances_at_rate_r_move_every_onset_to_t_over_r(family):
    midi, programs = family_midi(family)
    seconds = 4.0
    onsets, drums = note_onsets(perform(midi, programs, seconds, 1.0))
    assert onsets and max(onsets) < seconds
    assert (family == "groove") == bool(drums)
    for rate in (0.5, 0.75, 2.0):
        fast, fast_drums = note_onsets(perform(midi, programs, seconds, rate))
        assert len(fast) == len(onsets) and len(fast_drums) == len(drums)
        np.testing.assert_allclose(fast, np.array(onsets) / rate, atol=1e-3)
        np.testing.assert_allclose(fast_drums, np.array(drums) / rate, atol=1e-3)


def attack_times(wave: np.ndarray, sr: int, quiet: float = 0.05) -> list[float]:
    """Seconds where the wave rises above ``quiet`` x its peak after 40 ms below it."""
    loud = np.abs(wave) > quiet * np.abs(wave).max()
    gap = int(0.04 * sr)
    times, last = [], -gap
    for i in np.flatnonzero(loud):
        if i - last > gap:
            times.append(i / sr)
        last = i
    return times


def sparse_hits() -> tuple[mido.MidiFile, list[float]]:
    """Claves hits at irregular times after a rest, at 97 bpm: isolated attacks to time."""
    beats = [0.5, 1.5, 2.6, 3.3]
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=round(60e6 / 97))])
    last = 0
    for b in beats:
        tick = round(b * 480)
        track.append(mido.Message("note_on", channel=DRUM_CHANNEL, note=75, velocity=110, time=tick - last))
        track.append(mido.Message("note_off", channel=DRUM_CHANNEL, note=75, velocity=0, time=48))
        last = tick + 48
    midi.tracks.append(track)
    return midi, [b * 60 / 97 for b in beats]


@pytest.mark.parametrize(
    "synth", [pytest.param("fluidsynth", marks=needs_fluidsynth), pytest.param("timidity", marks=needs_timidity)]
)
def test_rendered_attacks_fall_at_t_over_r(synth):
    """Both engines honour the scaled tempo and keep the leading rest (timidity skips it unless
    told not to): every attack of the rate-r render is at t / r, give or take one latency."""
    midi, times = sparse_hits()
    bank = find_soundfont(synth=synth)
    late = []
    for rate in (1.0, 0.5, 2.0):
        n = round(3.0 * SR / rate)
        wave = render(perform(midi, 0, 3.0, rate), bank, SR, n, synth=synth)
        assert wave.shape == (n,)
        found = attack_times(wave, SR)
        assert len(found) == len(times), (rate, found)
        late += [f - t / rate for f, t in zip(found, times)]
    assert max(late) - min(late) < 0.012, late  # the engine's latency, the same at every rate
    assert 0 <= min(late) < 0.02


def test_timidity_config_completes_the_patch_set(tmp_path):
    """Programs and drum keys a patch set lacks get its nearest one (same GM family first), so
    timidity never falls back to the system's soundfont (a training timbre)."""
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(
        "dir /nowhere\nbank 0\n 0 piano.pat amp=80\n40 violin.pat\n73 flute.pat # a comment\n"
        "drumset 0\n36 kick.pat\n42 hat.pat\n"
    )
    lines = timidity_config(cfg, tmp_path).read_text().splitlines()
    assert lines[0] == f"source {cfg.resolve()}"
    tones = dict(line.split(" ", 1) for line in lines[2 : lines.index("drumset 0")])
    assert set(tones) == {str(p) for p in range(128)} - {"0", "40", "73"}
    assert tones["41"] == "violin.pat" and tones["3"] == "piano.pat amp=80" and tones["75"] == "flute.pat"
    drums = dict(line.split(" ", 1) for line in lines[lines.index("drumset 0") + 1 :])
    assert drums["35"] == "kick.pat" and drums["44"] == "hat.pat"
    with pytest.raises(GanStretchError, match="no instruments"):
        (tmp_path / "empty.cfg").write_text("dir /nowhere\n")
        timidity_config(tmp_path / "empty.cfg", tmp_path)


@needs_fluidsynth
def test_reverb_rings_after_the_notes():
    midi, times = sparse_hits()
    bank = find_soundfont()
    dry = render(perform(midi, 0, 3.0, 1.0), bank, SR, 3 * SR)
    wet = render(perform(midi, 0, 3.0, 1.0, controls={91: 110}), bank, SR, 3 * SR, reverb=True, room_size=0.8)
    tail = slice(int((times[-1] + 0.3) * SR), int((times[-1] + 0.6) * SR))
    assert np.sqrt(np.mean(wet[tail] ** 2)) > 10 * np.sqrt(np.mean(dry[tail] ** 2)) + 1e-6


# --- levels and render choices -----------------------------------------------------------------


def test_one_gain_for_every_rate_of_an_item():
    rng = np.random.default_rng(0)
    waves = {
        1.0: 0.3 * rng.standard_normal(1000),
        0.5: 0.2 * rng.standard_normal(2000),
        2.0: 0.25 * rng.standard_normal(500),
    }
    out, gain = normalise(waves, -20.0)
    assert 20 * np.log10(np.abs(out[1.0]).max()) == pytest.approx(-20.0, abs=1e-4)
    for r in waves:
        np.testing.assert_allclose(out[r], waves[r] * gain, rtol=1e-5)
    # a rate louder than the target allows: the gain is lowered for every rate, never clipped
    waves[2.0] = waves[2.0] * 40
    out, gain = normalise(waves, -3.0)
    assert max(np.abs(w).max() for w in out.values()) == pytest.approx(10 ** (CEILING_DB / 20), rel=1e-5)
    for r in waves:
        np.testing.assert_allclose(out[r], waves[r] * gain, rtol=1e-5)


def test_render_choices_are_drawn_from_the_item_seed(tmp_path):
    banks = [tmp_path / f"{n}.sf2" for n in ("a", "b", "c")]
    picks = [choose_render(item_seed(0, f"groove-{k}"), banks, "random", "on", (-30, -3)) for k in range(90)]
    again = [choose_render(item_seed(0, f"groove-{k}"), banks, "random", "on", (-30, -3)) for k in range(90)]
    assert picks == again
    counts = {b: sum(p["soundfont"] == b for p in picks) for b in banks}
    assert min(counts.values()) > 15, counts
    assert {p["reverb"] for p in picks} == {True, False} and all(p["chorus"] for p in picks)
    assert all(-30 <= p["level"] <= -3 and round(p["level"], 1) == p["level"] for p in picks)
    assert all(("reverb_send" in p["effects"]) == p["reverb"] for p in picks)
    other_seed = [choose_render(item_seed(1, f"groove-{k}"), banks, "random", "on", (-30, -3)) for k in range(90)]
    assert other_seed != picks
    plain = choose_render(5, banks[:1])
    assert plain == {"soundfont": banks[0], "reverb": False, "chorus": False, "effects": {}, "level": None}


# --- corpora -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def groove_corpus(tmp_path_factory):
    """Two 2-second grooves at rates 1, 0.5, 2, built by the CLI with every render option."""
    if shutil.which("fluidsynth") is None or not _has_soundfont():
        pytest.skip("fluidsynth or a General MIDI soundfont is missing")
    root = tmp_path_factory.mktemp("grooves")
    other = root / "Other.sf2"  # a second bank name for the draw (the same sounds)
    other.symlink_to(find_soundfont())
    out = root / "corpus"
    assert (
        main(
            [
                "data",
                "midi",
                "--family",
                "groove",
                "--out",
                str(out),
                "--pieces",
                "2",
                "--seconds",
                "2",
                "--rates",
                "0.5",
                "2",
                "--soundfont",
                f"{find_soundfont()},{other}",
                "--reverb",
                "on",
                "--chorus",
                "random",
                "--level-range",
                "-30",
                "-3",
                "--heldout",
                "0",
            ]
        )
        == 0
    )
    return Corpus(out)


def test_groove_corpus_manifest_records_every_choice(groove_corpus):
    c = groove_corpus
    assert c.manifest["family"] == "groove" and c.manifest["reverb"] == "on"
    assert len(c.items) == 2 and {i.split for i in c.items} == {"train"}
    banks = [find_soundfont(), Path(c.root).parent / "Other.sf2"]
    for k, item in enumerate(c.items):
        assert item.family == "groove" and item.synth == "fluidsynth"
        assert item.seed == item_seed(0, f"groove-{k}")
        choice = choose_render(item.seed, banks, "on", "random", (-30, -3))
        assert item.soundfont == choice["soundfont"].name and item.chorus == choice["chorus"]
        assert item.reverb is True and item.extra["effects"]["reverb_send"] == choice["effects"]["reverb_send"]
        assert item.level == choice["level"] and item.peak_db == pytest.approx(item.level, abs=0.05)
        g = groove(item.seed, 2.0)
        assert item.extra["groove"]["style"] == g.style and item.extra["groove"]["bpm"] == g.bpm
        assert item.programs == {str(ch): p for ch, p in g.programs.items()}
        assert item.onsets == sorted(item.onsets) and 0 <= item.onsets[0] and item.onsets[-1] < 2.0
        assert item.drum_onsets == sorted(item.drum_onsets) and item.drum_onsets[-1] < 2.0
        assert (item.onsets, item.drum_onsets) == note_onsets(perform(g.midi(), g.programs, 2.0, 1.0))
        fast = note_onsets(perform(g.midi(), g.programs, 2.0, 2.0))
        np.testing.assert_allclose(c.onsets(item, 2.0), sorted(fast[0] + fast[1]), atol=1e-3)


def test_groove_corpus_renders_true_tempo_pairs_at_one_gain(groove_corpus, tmp_path):
    """Each rate lasts round(n / r) samples, and the level is one gain over the engine's own renders:
    the same item built without a level range differs from it by the same factor at every rate."""
    c = groove_corpus
    raw = build_true_tempo(
        tmp_path / "raw",
        pieces=2,
        seconds=2.0,
        rates=(0.5, 2.0),
        family="groove",
        soundfont=[str(find_soundfont()), str(Path(c.root).parent / "Other.sf2")],
        reverb="on",
        chorus="random",
        heldout=0.0,
    )
    for item, plain in zip(c.items, raw.items):
        assert plain.level is None and item.id.startswith(plain.id)
        gains = []
        for rate in (1.0, 0.5, 2.0):
            wave, ref = c.load(item, rate), raw.load(plain, rate)
            assert len(wave) == len(ref) == round(2.0 * SR / rate)
            gains.append(float(np.dot(wave, ref) / np.dot(ref, ref)))
            np.testing.assert_allclose(wave, gains[-1] * ref, atol=2e-4)  # 16-bit steps of both files
        assert max(gains) / min(gains) == pytest.approx(1.0, abs=2e-3)


@needs_fluidsynth
@pytest.mark.parametrize("family", ["classical", "ensemble"])
def test_music21_families_render_true_tempo_pairs(family, tmp_path):
    c = build_true_tempo(tmp_path / family, pieces=1, seconds=1.5, rates=(2.0,), family=family, heldout=0.0)
    (item,) = c.items
    assert item.family == family and item.source == "music21:bach/bwv1.6.mxl"
    assert len(c.load(item, 1.0)) == round(1.5 * SR) and len(c.load(item, 2.0)) == round(0.75 * SR)
    assert item.onsets and item.onsets[-1] < 1.5 and item.drum_onsets == []
    if family == "ensemble":
        assert len(set(item.programs.values())) > 1 and item.extra["ensemble"] in FAMILIES
    else:
        assert item.program is not None and set(item.programs.values()) == {item.program}
        assert item.id == f"bach-bwv1.6-p{item.program}-TimGM6mb"  # ids of existing corpora still match


def test_old_manifests_still_load(tmp_path):
    """Manifests written before the new fields load; unknown fields land in ``extra``."""
    item = {
        "id": "x",
        "split": "train",
        "source": "music21:bach/bwv66.6",
        "program": 0,
        "soundfont": "TimGM6mb.sf2",
        "audio": {"1.000": "audio/x/r1.000.flac"},
        "future": 1,
    }
    (tmp_path / "manifest.json").write_text(
        json.dumps({"kind": "true-tempo", "sample_rate": 22050, "seconds": 8, "rates": [0.5], "items": [item]})
    )
    (tmp_path / "audio" / "x").mkdir(parents=True)
    sf.write(str(tmp_path / "audio" / "x" / "r1.000.flac"), np.zeros(100, np.float32), 22050)
    (loaded,) = Corpus(tmp_path).items
    assert loaded.program == 0 and loaded.onsets is None and loaded.family is None and loaded.level is None
    assert loaded.extra == {"future": 1}


@needs_fluidsynth
def test_rebuilding_an_older_corpus_adds_onsets_without_rendering_again(tmp_path):
    build_true_tempo(tmp_path, pieces=1, seconds=1.0, rates=(2.0,), heldout=0.0)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    fresh = dict(manifest["items"][0])
    manifest["items"] = [{k: fresh[k] for k in ("id", "split", "source", "program", "soundfont", "audio")}]
    path.write_text(json.dumps(manifest))  # as written before onsets were recorded
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.flac")}
    (item,) = build_true_tempo(tmp_path, pieces=1, seconds=1.0, rates=(2.0,), heldout=0.0).items
    assert item.onsets == fresh["onsets"] and item.programs == fresh["programs"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.flac")} == stamps


def test_bad_render_options_fail_before_anything_is_written(tmp_path, capsys):
    out, bank = tmp_path / "c", tmp_path / "a.sf2"
    bank.write_bytes(b"")
    assert main(["data", "midi", "--family", "groove", "--out", str(out), "--soundfont", f"{bank},nope.sf2"]) == 1
    assert main(["data", "midi", "--out", str(out), "--level-range", "-3", "-30"]) == 1
    assert main(["data", "midi", "--out", str(out), "--synth", "timidity", "--soundfont", str(bank)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("gan-stretch: error:") for line in err)
    assert "nope.sf2" in err[0] and "level range" in err[1] and "timidity" in err[2]
    assert not out.exists()
