"""The listening page for recorded music, which has no truth: eval/benchmark.py --recordings CORPUS
--listen stores the input and every output, and the page takes the input at its own tempo as its
reference, says that no truth exists, and rates each method blind without a hidden reference."""

from __future__ import annotations

import csv
import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]

from test_listen import WAIT_AUDIO, _browser, _downloaded_json, named_files, score_ratings  # noqa: E402

from eval import listen  # noqa: E402
from gan_stretch.data.recordings import build_recordings  # noqa: E402

from conftest import SR, music_like  # noqa: E402


def blind_data(page: Path) -> dict:
    html = (page / "blind.html").read_text()
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_trial_without_truth_is_saved_and_makes_a_page(tmp_path):
    """A recording's trial: the input (stereo kept) and the outputs, no truth; the page's reference is
    the input, the blind test has the methods and the anchor (no hidden reference), each at the length
    the rate asks for, and both pages say that no truth exists."""
    rng = np.random.default_rng(0)
    x = np.stack([music_like(SR * 2, seed=5), music_like(SR * 2, seed=6)]) * 0.5  # [2, N]
    outs = {"short": x[:, : SR - 2205], "long": x[:, : SR + 300] * 0.8, "noisy": rng.normal(0, 0.1, (2, SR))}
    folder = listen.save_trial(tmp_path, "rec/x0", 2.0, SR, x, None, outs)
    meta = json.loads((folder / "trial.json").read_text())
    assert meta["truth"] is None and set(meta["methods"]) == set(outs)
    stored, sr = sf.read(str(folder / meta["input"]), always_2d=True)
    assert sr == SR and stored.shape == (2 * SR, 2)
    np.testing.assert_allclose(stored.T, x, atol=1e-6)  # 24-bit FLAC of the excerpt as it was

    page = listen.build(tmp_path).parent
    index, blind = (page / "index.html").read_text(), (page / "blind.html").read_text()
    assert "No truth exists" in index and "true-tempo render" not in index
    assert "no truth exists" in blind and "hidden copy of the reference" not in blind
    assert named_files(page) == {str(p.relative_to(page)) for p in page.rglob("*") if p.is_file()}
    data = blind_data(page)
    assert data["truth"] is False and "no truth" in data["reference_text"]
    (trial,) = data["trials"]
    assert sorted(i["method"] for i in trial["items"]) == ["anchor", "long", "noisy", "short"]
    assert sf.info(str(page / trial["reference"])).frames == 2 * SR  # the input at its own tempo
    for it in trial["items"]:
        assert sf.info(str(page / it["src"])).frames == SR, it["method"]  # 2 s at rate 2


def test_truth_and_recordings_are_not_mixed_on_one_page(tmp_path):
    x = music_like(SR * 2, seed=1)
    listen.save_trial(tmp_path, "piece", 2.0, SR, x, x[:SR], {"m": x[:SR]})
    listen.save_trial(tmp_path, "rec", 2.0, SR, x, None, {"m": x[:SR]})
    with pytest.raises(listen.ListenError, match="mixes trials with a truth and recordings"):
        listen.build(tmp_path)
    assert not (tmp_path / "listen").exists()


def test_ratings_without_truth_are_scored_unscreened(tmp_path):
    """No hidden reference to screen with: the listener is kept and the report says why."""
    trials = [
        {"trial": f"rec@{r:g}", "rate": r, "mapping": {"A": "wsola", "B": "anchor"}, "ratings": {"A": 70, "B": 10}}
        for r in (0.5, 2.0)
    ]
    path = tmp_path / "ratings.json"
    path.write_text(json.dumps({"format": listen.FORMAT, "listener": "ann", "truth": False, "trials": trials}))
    report = listen.score([path], tmp_path / "scores")
    assert "1 listener(s), 1 kept" in report and "ann: not screened" in report
    assert "| wsola | 70.0 (1) | 70.0 (1) | 70.0 ± 0.0 (2) |" in report
    # the same file from a page with a truth but no hidden reference rated: excluded, as before
    path.write_text(json.dumps({"format": listen.FORMAT, "listener": "ann", "trials": trials}))
    with pytest.raises(listen.ListenError, match="hidden reference in no trial"):
        listen.score([path], tmp_path / "scores2")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, fake_root):  # noqa: F811
    """A recordings corpus (2 s excerpts of the fake packages) scored with wsola at rate 2 and --listen."""
    from eval import benchmark

    tmp = tmp_path_factory.mktemp("recorded")
    corpus = build_recordings(tmp / "rec", seconds=2.0, excerpts=1, heldout=0.4, root=fake_root)
    out = tmp / "run"
    args = ["--recordings", str(corpus.root), "--out", str(out), "--methods", "wsola", "--rates", "2"]
    args += ["--pieces", "4", "--seeds", "1", "--jobs", "1", "--listen", "--listen-pieces", "2"]
    with pytest.MonkeyPatch.context() as mp:  # a short naturalness test: its own tests are in test_recordings
        mp.setattr(benchmark.nat, "two_sample_test", functools.partial(benchmark.nat.two_sample_test, steps=30))
        assert benchmark.main(args) == 0
    return corpus, out


def test_benchmark_listens_to_recordings(recorded):
    corpus, out = recorded
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(r["naturalness"] for r in rows)  # scored as without --listen
    first = [r["piece"] for r in rows[:2]]  # the first --listen-pieces excerpts, and only those
    trials = sorted((out / "audio").glob("*/*/trial.json"))
    assert sorted(json.loads(t.read_text())["piece"] for t in trials) == sorted(first)
    for t in trials:
        meta = json.loads(t.read_text())
        assert meta["truth"] is None and list(meta["methods"]) == ["wsola"]
        item = next(i for i in corpus.items if i.id == meta["piece"])
        x = corpus.load(item, 1.0, mono=False)
        stored, sr = sf.read(str(t.parent / meta["input"]), always_2d=True)
        assert sr == corpus.sample_rate and stored.T.shape == x.shape  # channels kept
        frames = sf.info(str(t.parent / meta["methods"]["wsola"])).frames  # the output scored in results.csv
        error_ms = next(float(r["duration_error_ms"]) for r in rows if r["piece"] == meta["piece"])
        assert frames - x.shape[-1] / 2 == pytest.approx(error_ms / 1000 * sr, abs=2)
    page = out / "listen"
    assert "No truth exists" in (page / "index.html").read_text()
    assert "naturalness" in (page / "index.html").read_text()  # results.csv's measures beside each clip
    assert {i["method"] for t in blind_data(page)["trials"] for i in t["items"]} == {"wsola", "anchor"}


def test_benchmark_cli_accepts_listen_for_a_corpus_and_refuses_a_folder(recorded, tmp_path, capsys):
    from eval import benchmark

    corpus, _ = recorded
    music = tmp_path / "music"
    music.mkdir()
    sf.write(str(music / "a.wav"), music_like(SR * 2, seed=0), SR)
    for args, message in (
        (["--recordings", str(music), "--listen"], "needs a recordings corpus"),
        (["--recordings", str(corpus.root), "--listen", "--listen-pieces", "0"], "--listen-pieces must be at least 1"),
    ):
        with pytest.raises(SystemExit, match=message):
            benchmark.main([*args, "--out", str(tmp_path / "out"), "--methods", "wsola"])
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.browser
def test_recorded_page_in_chromium(recorded, tmp_path):
    """The recordings page in headless Chromium: every clip decodes; the blind test shows the original
    as its reference, rates the method and the anchor, and its download scores without screening."""
    browser = _browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, out = recorded
    page = out / "listen"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser.chromium(download_dir=downloads)
    try:
        driver.set_script_timeout(30)
        driver.get((page / "index.html").as_uri())
        states = driver.execute_async_script(WAIT_AUDIO)
        assert len(states) == 2 * 3  # per excerpt: input, wsola, anchor
        assert all(s["error"] is None and s["state"] >= 3 for s in states), states
        assert "No truth exists" in driver.find_element(By.TAG_NAME, "header").text
        browser.close(driver)
        driver = None
        shot = browser.screenshot(page / "index.html", out / "listen-recorded.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        driver = browser.chromium(download_dir=downloads)
        driver.set_script_timeout(30)
        driver.get((page / "blind.html").as_uri())
        driver.find_element(By.ID, "listener").send_keys("tester")
        driver.find_element(By.ID, "start").click()
        states = driver.execute_async_script(WAIT_AUDIO)
        assert len(states) == 1 + 2 and all(s["state"] >= 3 for s in states), states
        assert "no truth exists" in driver.find_element(By.CSS_SELECTOR, "#trial .item.ref").text
        for _ in range(2):
            trial = driver.find_element(By.ID, "trial").get_attribute("data-trial")
            for p in driver.execute_script("return window.listen.plan(arguments[0])", trial):
                slider = driver.find_element(By.CSS_SELECTOR, f'#trial .item[data-letter="{p["letter"]}"] input')
                slider.click()  # a click in the middle rates it 50
                slider.send_keys(Keys.HOME if p["method"] == "anchor" else Keys.ARROW_RIGHT * 20)
            if driver.find_element(By.ID, "next").is_enabled():
                driver.find_element(By.ID, "next").click()
        assert "2 of 2 trials complete" in driver.find_element(By.ID, "progress").text
        driver.save_screenshot(str(out / "listen-recorded-blind.png"))
        driver.find_element(By.ID, "download").click()
        ratings, data = _downloaded_json(downloads, "ratings-tester-*.json")
        assert data["truth"] is False
    finally:
        if driver is not None:
            browser.close(driver)
    report = score_ratings(ratings, out=tmp_path / "s")
    assert "1 kept" in report and "tester: not screened" in report
    for method, value in (("wsola", 70), ("anchor", 0)):  # as rated above, two trials at rate 2
        assert f"| {method} | {value}.0 ± 0.0 (2) | {value}.0 ± 0.0 (2) |" in report
