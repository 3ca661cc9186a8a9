"""The leaderboard in a real headless Chromium: start the app, wait for it, read what the page shows."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import free_port, spawn, wait_until
from tests.leaderboard_tests.conftest import WINNER

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Root in a container, and no network beyond loopback: the flags Chromium needs here.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def _answers(url: str, proc: subprocess.Popen[str], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the leaderboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def app_url(study_db: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "leaderboard.log"
    args = ["--storage", study_db, "--port", str(port)]
    with log.open("w") as sink:  # the child keeps its own copy of the file
        proc = spawn("leaderboard", *args, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, proc, log), 60, 0.25, what="the leaderboard answering on /_stcore/health")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _table(page: Page) -> tuple[list[str], list[list[str]]]:
    """The leaderboard table's column headers and rows, from the grid's accessible DOM."""
    grid = page.locator("[data-testid='stDataFrame']").first
    headers = [h.strip() for h in grid.locator("[role='columnheader']").all_text_contents()]
    rows = [
        [c.strip() for c in row.locator("[role='gridcell']").all_text_contents()]
        for row in grid.locator("[role='row']").all()
    ]
    return headers, [r for r in rows if r]


def test_top_ranked_trial_in_a_real_browser(app_url: str, tmp_path: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{app_url}/?study=demo")
        top = page.get_by_text("Top-ranked: trial", exact=False)
        top.wait_for(timeout=60_000)
        assert top.inner_text().startswith(f"Top-ranked: trial {WINNER} (")
        page.get_by_text("Ranked by COVID sensitivity @ target ↓, then lung focus ↓, then COVID AUC ↓").wait_for()
        # The grid paints on a canvas; its cells are also in the DOM, hidden, for screen readers.
        page.locator("[data-testid='stDataFrame'] [role='gridcell']").first.wait_for(state="attached")
        headers, rows = _table(page)
        page.get_by_text(f"Trial {WINNER}", exact=False).first.wait_for()
        # The default chart has drawn its points: Plotly's scatter traces are in the page.
        page.locator("[data-testid='stPlotlyChart'] .scatterlayer .trace").first.wait_for()
        shot = tmp_path / "leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    if os.environ.get("CXR_SCREENSHOT_DIR"):  # the picture, kept for a person to look at
        target = Path(os.environ["CXR_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "leaderboard.png").write_bytes(shot.read_bytes())
    # The grid draws only the cells in view, so these are the first columns and rows of the page.
    assert headers[:2] == ["rank", "trial"] and {"backbone", "COVID sens @ target"} <= set(headers), headers
    assert len(rows) >= 10, f"a page of ranked trials, but the table shows {len(rows)} row(s)"
    assert [row[0] for row in rows] == [str(rank) for rank in range(1, len(rows) + 1)], "rows in rank order"
    assert rows[0][1] == str(WINNER), rows[0]
