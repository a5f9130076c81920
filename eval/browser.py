"""Headless Chromium through Selenium, for the listening page's test and screenshots.

Uses the system's chromium and chromedriver (Debian: apt-get install chromium chromium-driver), never a
downloaded browser: Selenium Manager is bypassed by naming the driver's path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from gan_stretch.errors import GanStretchError

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
)


def find() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).exists()), None
    )
    return (browser, driver) if browser and driver else None


def chromium(download_dir: str | Path | None = None, size: tuple[int, int] = (1280, 900)):
    """A headless Chromium WebDriver with a fresh profile (removed with ``quit_all``); downloads go to
    ``download_dir`` without asking."""
    paths = find()
    if paths is None:
        raise GanStretchError("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gan-stretch-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(flag)
    if download_dir is not None:
        opts.add_experimental_option(
            "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
        )
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=paths[1]))
    driver.profile_dir = profile
    if download_dir is not None:  # headless Chromium ignores the prefs above without this
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def close(driver) -> None:
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)


def screenshot(page: str | Path, png: str | Path, size: tuple[int, int] = (1280, 900)) -> Path:
    """Opens ``page`` (a file) and writes a PNG of its first screen."""
    driver = chromium(size=size)
    try:
        driver.get(Path(page).resolve().as_uri())
        driver.execute_script("return document.fonts.ready")
        driver.execute_script("for (const i of document.images) i.loading = 'eager';")
        driver.implicitly_wait(0)
        _wait_images(driver)
        png = Path(png)
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        close(driver)
    return png


def _wait_images(driver, timeout: float = 20.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "return [...document.images].filter(i => i.getBoundingClientRect().top < innerHeight)"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
    )
