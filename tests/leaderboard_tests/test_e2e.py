"""The leaderboard in a real headless Chromium: start the app, wait for it, read the winner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import REPO
from tests.leaderboard_tests.conftest import WINNER

CHROMIUM = "/usr/bin/chromium"
# Root in a container, and no network beyond loopback: the flags Chromium needs here.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app_url(study_db: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "--storage", study_db, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the leaderboard did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_top_ranked_trial_in_a_real_browser(app_url: str, tmp_path: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{app_url}/?study=demo")
        top = page.get_by_text("Top-ranked: trial", exact=False)
        top.wait_for(timeout=60_000)
        assert top.inner_text().startswith(f"Top-ranked: trial {WINNER} (")
        page.get_by_text("Ranked by COVID sensitivity @ target ↓, then lung focus ↓, then COVID AUC ↓").wait_for()
        page.locator("[data-testid='stDataFrame']").first.wait_for()
        page.get_by_text(f"Trial {WINNER}", exact=False).first.wait_for()
        time.sleep(2)  # let the charts draw before the picture
        shot = tmp_path / "leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20_000
    if os.environ.get("CXR_SCREENSHOT_DIR"):
        target = Path(os.environ["CXR_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "leaderboard.png").write_bytes(shot.read_bytes())
