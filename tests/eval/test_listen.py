"""The listening page (eval/listen.py): built from a benchmark run with --listen, loudness-matched,
self-contained, scored from downloaded MUSHRA ratings; and driven in headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]

from eval import listen  # noqa: E402

from conftest import SR, music_like  # noqa: E402


def score_ratings(*ratings: Path, out: Path) -> str:
    """``python eval/listen.py --score RATINGS... --out OUT`` as a user runs it: its report (stdout)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "listen.py"), "--score", *map(str, ratings), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_corpus, tiny_model):
    """A benchmark run with --listen: 1 held-out piece x rates 0.5 and 2, a tiny model and the phase vocoder."""
    from eval import benchmark

    out = tmp_path_factory.mktemp("listen") / "run"
    assert (
        benchmark.main(
            [
                "--data",
                str(tiny_corpus.root),
                "--out",
                str(out),
                "--pieces",
                "1",
                "--model",
                f"tiny={tiny_model}",
                "--methods",
                "pv",
                "--listen",
            ]
        )
        == 0
    )
    return out


def named_files(folder: Path) -> set[str]:
    """Every relative file path index.html and blind.html name (attributes and the blind test's data)."""
    text = (folder / "index.html").read_text() + (folder / "blind.html").read_text()
    names = set(re.findall(r'(?:audio|spec)/[^"\'<>\s]+?\.(?:flac|png)', text))
    names |= set(re.findall(r'href="([^"#:]+)"', text))
    return names


def test_page_names_every_file_that_exists_and_nothing_else(results):
    page = results / "listen"
    on_disk = {str(p.relative_to(page)) for p in page.rglob("*") if p.is_file()}
    assert named_files(page) == on_disk
    # per (piece, rate): input, reference, the two methods and the anchor, each with audio and spectrogram
    assert len([f for f in on_disk if f.endswith(".flac")]) == 2 * 5
    assert len([f for f in on_disk if f.endswith(".png")]) == 2 * 5
    assert not list(results.glob(".listen-*"))  # no temporary build folder left behind


def test_clips_are_loudness_matched_and_do_not_clip(results):
    import pyloudnorm

    page = results / "listen"
    for trial in sorted((page / "audio").iterdir()):
        levels = []
        for f in sorted(trial.glob("*.flac")):
            x, sr = sf.read(str(f), dtype="float64")
            assert 20 * np.log10(np.abs(x).max()) <= listen.PEAK_DBFS + 0.01
            levels.append(pyloudnorm.Meter(sr).integrated_loudness(x))
        assert max(levels) - min(levels) < 0.1, levels  # one loudness per row (16-bit rounding aside)
        assert max(levels) <= listen.TARGET_LUFS + 0.05
    assert "LUFS" in (page / "index.html").read_text() and "BS.1770" in (page / "blind.html").read_text()


def test_blind_items_last_as_long_as_the_reference(tmp_path):
    """A method whose output ends early keeps its length on the comparison page, and is padded to the
    reference's length in the blind test, where the player's duration would give it away."""
    x = music_like(SR * 2, seed=3)
    truth = music_like(SR, seed=4)
    listen.save_trial(tmp_path, "a/piece", 2.0, SR, x, truth, {"short": truth[:-2205], "exact": truth * 0.5})
    page = listen.build(tmp_path).parent  # no results.csv: a page without measures
    html = (page / "blind.html").read_text()
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S).group(1))
    (trial,) = data["trials"]
    assert sorted(i["method"] for i in trial["items"]) == ["anchor", "exact", "reference", "short"]
    for it in trial["items"]:
        assert sf.info(str(page / it["src"])).frames == SR, it["method"]
    assert "0.90 s" in (page / "index.html").read_text()  # the short output as the method wrote it
    on_disk = {str(p.relative_to(page)) for p in page.rglob("*") if p.is_file()}
    assert named_files(page) == on_disk
    assert (page.stat().st_mode & 0o755) == 0o755  # readable by a web server, unlike a bare mkdtemp


def test_peak_guard_lowers_the_whole_row():
    """A spiky clip that would peak above -1 dBFS at -23 LUFS pulls every clip of its row down together."""
    quiet = music_like(SR * 2, seed=1)[None] * 0.1
    spiky = np.zeros((1, SR * 2), np.float32)
    spiky[0, ::2205] = 0.9  # clicks: low loudness, high peaks
    spiky += quiet * 0.05
    out, level = listen.match_loudness({"a": quiet, "b": spiky}, SR)
    assert level < listen.TARGET_LUFS - 3
    assert np.abs(out["b"]).max() <= 10 ** (listen.PEAK_DBFS / 20) + 1e-6
    assert abs(listen.loudness(out["a"], SR) - listen.loudness(out["b"], SR)) < 0.05


def test_spectrograms_of_a_row_share_one_colour_scale(tmp_path):
    """The quieter of two clips gets the darker image: each row has one colour scale, not one per image."""
    import matplotlib.image

    x = music_like(SR * 2, seed=2)[None]
    specs = {"loud": listen.mel_db(x, SR), "quiet": listen.mel_db(x * 0.05, SR)}
    paths = {n: tmp_path / f"{n}.png" for n in specs}
    listen.save_spectrograms(specs, paths)
    img = {n: matplotlib.image.imread(p) for n, p in paths.items()}
    assert img["loud"].shape[:2] == (listen.SPEC_PX[1], listen.SPEC_PX[0])
    assert img["quiet"][..., :3].mean() < img["loud"][..., :3].mean() - 0.05


def test_page_shows_every_measure_column_of_results_csv(results):
    """Per-clip measures come from results.csv generically: a new column appears without code changes."""
    import csv

    with open(results / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    html = (results / "listen" / "index.html").read_text()
    row = next(r for r in rows if r["method"] == "tiny" and float(r["rate"]) == 2.0)
    assert f"<th>logmel_<wbr>db</th><td>{float(row['logmel_db']):.3g}</td>" in html
    for r in rows:
        r["loudness_ok"] = "1234.5" if r["method"] == "pv" else "7"
    with open(results / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    try:
        listen.build(results)
        html = (results / "listen" / "index.html").read_text()
        assert "<th>loudness_<wbr>ok</th><td>1,234</td>" in html or "<th>loudness_<wbr>ok</th><td>1,235</td>" in html
    finally:  # leave the shared fixture as the benchmark wrote it
        with open(results / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c != "loudness_ok"], extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        listen.build(results)


def test_blind_data_hides_nothing_needed_and_names_every_method(results):
    html = (results / "listen" / "blind.html").read_text()
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert data["format"] == listen.FORMAT
    for t in data["trials"]:
        methods = [i["method"] for i in t["items"]]
        assert sorted(methods) == ["anchor", "pv", "reference", "tiny"]  # the input is not rated
        assert all(re.fullmatch(r"audio/t\d\d/[0-9a-f]{10}\.flac", i["src"]) for i in t["items"])  # opaque names


def test_anchor_moves_the_pitch(results):
    """The low anchor is resampling: right duration, pitch moved by an octave at rates 0.5 and 2."""
    from gan_stretch.measures import metrics

    trial = next(p for p in (results / "audio").glob("*/rate2/trial.json"))
    meta = json.loads(trial.read_text())
    src, sr = sf.read(str(trial.parent / meta["input"]), dtype="float32")
    anchor = listen.teachers.resample(src[None], sr, 2.0)[0]
    assert abs(anchor.shape[-1] - len(src) / 2) <= 1
    assert abs(abs(metrics.pitch_shift_cents(anchor, src, sr)) - 1200) < 50


def test_reserved_method_name_and_missing_clips_are_one_clear_error(tmp_path, capsys):
    x = music_like(SR)
    with pytest.raises(listen.ListenError, match="reserved"):
        listen.save_trial(tmp_path, "p", 2.0, SR, x, x[::2], {"anchor": x[::2]})
    assert listen.main(["--results", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no clips under") and err.count("\n") == 1
    assert not (tmp_path / "nothing" / "listen").exists()


def ratings_file(path: Path, listener: str, trials: list[tuple[float, dict[str, float]]]) -> Path:
    """A rating file as the page downloads it: per trial (rate, {method: rating}) under shuffled letters."""
    out = []
    for k, (rate, by_method) in enumerate(trials):
        letters = {m: chr(65 + (i + k) % len(by_method)) for i, m in enumerate(by_method)}
        out.append(
            {
                "trial": f"piece{k}@{rate:g}",
                "piece": f"piece{k}",
                "rate": rate,
                "mapping": {l: m for m, l in letters.items()},
                "ratings": {letters[m]: v for m, v in by_method.items()},
            }
        )
    path.write_text(json.dumps({"format": listen.FORMAT, "page": "x", "listener": listener, "trials": out}))
    return path


def test_score_table_confidence_intervals_and_post_screening(tmp_path):
    from scipy import stats

    good = ratings_file(
        tmp_path / "ann.json",
        "ann",
        [
            (0.5, {"reference": 100, "gan": 80, "pv": 40, "anchor": 10}),
            (0.5, {"reference": 95, "gan": 90, "pv": 50, "anchor": 20}),
            (2.0, {"reference": 100, "gan": 70, "pv": 30, "anchor": 5}),
        ],
    )
    careless = ratings_file(
        tmp_path / "bob.json",
        "bob",
        [  # hidden reference at 60 in 1 of 3 trials: 33 % > 15 %
            (0.5, {"reference": 60, "gan": 100, "pv": 100, "anchor": 100}),
            (0.5, {"reference": 100, "gan": 100, "pv": 100, "anchor": 100}),
            (2.0, {"reference": 100, "gan": 100, "pv": 100, "anchor": 100}),
        ],
    )
    report = score_ratings(good, careless, out=tmp_path / "scores")
    assert "bob: excluded, rated the hidden reference below 90 in 1 of 3 trials" in report
    half = stats.t.ppf(0.975, 1) * np.std([80, 90], ddof=1) / np.sqrt(2)  # gan at 0.5: ann's 80 and 90 only
    assert f"| gan | 85.0 ± {half:.1f} (2) | 70.0 (1) |" in report
    lines = [l for l in report.splitlines() if l.startswith("| ")]
    assert [l.split(" | ")[0] for l in lines[1:]] == ["| reference", "| gan", "| pv", "| anchor"]
    for f in ("listening.md", "ratings.csv", "listening.png"):
        assert (tmp_path / "scores" / f).stat().st_size > 0
    assert (tmp_path / "scores" / "ratings.csv").read_text().count("\n") == 1 + 2 * 3 * 4  # every rating, kept or not


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "cannot read rating file"),
        (json.dumps({"format": "other"}), "is not a rating file"),
        (
            json.dumps(
                {
                    "format": listen.FORMAT,
                    "listener": "x",
                    "trials": [{"trial": "p@2", "rate": 2, "mapping": {"A": "gan"}, "ratings": {"A": 120}}],
                }
            ),
            "not in 0..100",
        ),
        (
            json.dumps(
                {
                    "format": listen.FORMAT,
                    "listener": "x",
                    "trials": [{"trial": "p@2", "rate": 2, "mapping": {"A": "reference"}, "ratings": {"A": 20}}],
                }
            ),
            "no ratings left",
        ),
    ],
)
def test_score_rejects_bad_rating_files_with_one_line(tmp_path, capsys, content, message):
    bad = tmp_path / "r.json"
    bad.write_text(content)
    assert listen.main(["--score", str(bad), "--out", str(tmp_path / "s")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s" / "listening.md").exists()


# ---------------------------------------------------------------- in a real browser


def _browser():
    from eval import browser

    if browser.find() is None:
        pytest.skip(
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
            "make test installs them)"
        )
    pytest.importorskip("selenium", reason="selenium is not installed (requirements.lock)")
    return browser


WAIT_AUDIO = """
const done = arguments[arguments.length - 1];
const els = [...document.querySelectorAll('audio')];
for (const a of els) { a.preload = 'auto'; a.load(); }
const t0 = Date.now();
(function poll() {
  if (els.every(a => a.readyState >= 3 || a.error) || Date.now() - t0 > 20000)
    done(els.map(a => ({src: a.getAttribute('src') || a.src, state: a.readyState, duration: a.duration,
                        error: a.error && a.error.code})));
  else setTimeout(poll, 50);
})();
"""


def _downloaded_json(folder, pattern, seconds=10):
    """The JSON file Chromium downloads into folder and its content, once it is complete.

    The browser may create the file under its final name before it has written it, so an empty or
    partial file is waited out, not parsed.
    """
    deadline = time.time() + seconds
    while True:
        for f in folder.glob(pattern):
            try:
                return f, json.loads(f.read_text())
            except (json.JSONDecodeError, OSError):
                pass
        assert time.time() < deadline, list(folder.iterdir())
        time.sleep(0.1)


@pytest.mark.browser
def test_page_plays_rates_and_downloads_in_chromium(results, tmp_path):
    browser = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = results / "listen"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser.chromium(download_dir=downloads)
    try:
        driver.set_script_timeout(30)
        # the comparison page: every clip loads and decodes, with the file's duration; every image loads
        driver.get((page / "index.html").as_uri())
        states = driver.execute_async_script(WAIT_AUDIO)
        assert len(states) == 10
        for s in states:
            info = sf.info(str(page / s["src"]))
            assert s["error"] is None and s["state"] >= 3, s
            assert abs(s["duration"] - info.frames / info.samplerate) < 0.05, (s, info.duration)
        assert driver.execute_script("return [...document.images].every(i => (i.loading = 'eager', true))")
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        time.sleep(0.3)
        assert driver.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth == 400)")
        played = driver.execute_async_script("""
            const done = arguments[0], a = document.querySelector('audio');
            a.muted = true; a.currentTime = 0;
            a.play().then(() => setTimeout(() => { a.pause(); done(a.currentTime); }, 400), e => done(-1));""")
        assert played > 0.1  # it really plays
        browser.close(driver)
        driver = None
        shot = browser.screenshot(page / "index.html", results / "listen.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        driver = browser.chromium(download_dir=downloads)
        driver.set_script_timeout(30)
        driver.get((page / "blind.html").as_uri())
        assert not driver.find_element(By.ID, "test").is_displayed()
        driver.find_element(By.ID, "listener").send_keys("tester")
        driver.find_element(By.ID, "start").click()
        states = driver.execute_async_script(WAIT_AUDIO)
        assert len(states) == 1 + 4 and all(s["state"] >= 3 for s in states), states
        plans = {}
        for _ in range(2):
            trial = driver.find_element(By.ID, "trial").get_attribute("data-trial")
            plan = driver.execute_script("return window.listen.plan(arguments[0])", trial)
            plans[trial] = {p["letter"]: p["method"] for p in plan}
            shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#trial .item[data-letter] .letter")]
            assert shown == sorted(plans[trial])
            visible = driver.find_element(By.ID, "trial").text
            assert "tiny" not in visible and "anchor" not in visible  # the letters hide the methods
            for letter, method in plans[trial].items():
                slider = driver.find_element(By.CSS_SELECTOR, f'#trial .item[data-letter="{letter}"] input')
                slider.click()  # a click in the middle rates it 50
                slider.send_keys({"reference": Keys.END, "anchor": Keys.HOME}.get(method, Keys.ARROW_RIGHT * 5))
                out = driver.find_element(By.CSS_SELECTOR, f'#trial .item[data-letter="{letter}"] output').text
                assert out == {"reference": "100", "anchor": "0"}.get(method, "55"), (method, out)
            if len(plans) < 2:
                driver.find_element(By.ID, "next").click()
        assert "2 of 2 trials complete" in driver.find_element(By.ID, "progress").text
        driver.save_screenshot(str(results / "listen-blind.png"))
        # ratings survive a reload, and the same listener gets the same order
        driver.refresh()
        driver.find_element(By.ID, "start").click()  # the name is remembered
        trial = driver.find_element(By.ID, "trial").get_attribute("data-trial")
        again = {
            p["letter"]: p["method"] for p in driver.execute_script("return window.listen.plan(arguments[0])", trial)
        }
        assert again == plans[trial]
        assert "2 of 2 trials complete" in driver.find_element(By.ID, "progress").text
        driver.find_element(By.ID, "download").click()
        ratings, data = _downloaded_json(downloads, "ratings-tester-*.json")
        assert data["listener"] == "tester" and {t["trial"]: t["mapping"] for t in data["trials"]} == plans
        # another listener hears another order (seeded by name: fixed for these two names)
        driver.execute_script("document.getElementById('listener').value = 'someone else'")
        driver.find_element(By.ID, "start").click()
        other = {
            t: {p["letter"]: p["method"] for p in driver.execute_script("return window.listen.plan(arguments[0])", t)}
            for t in plans
        }
        assert other != plans
    finally:
        if driver is not None:
            browser.close(driver)

    report = score_ratings(ratings, out=tmp_path / "scores")
    for method, value in (("reference", 100), ("tiny", 55), ("pv", 55), ("anchor", 0)):  # as rated above
        assert f"| {method} | {value}.0 (1) | {value}.0 (1) | {value}.0 ± 0.0 (2) |" in report
