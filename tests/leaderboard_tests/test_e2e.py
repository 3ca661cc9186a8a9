"""The leaderboard in a real headless Chromium: start the app, open its pages by address, and read
what they show (the ranking table, the CSV it downloads, a trial, four trials side by side, two
studies side by side, a review that survives a reload)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from leaderboard import data as D
from tests.conftest import free_port, spawn, wait_until
from tests.leaderboard_tests.conftest import WINNER

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Root in a container, and no network beyond loopback: the flags Chromium needs here.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
WINDOW: ViewportSize = {"width": 1500, "height": 1000}  # the window the COVID figures must fit without scrolling
TIMEOUT_MS = 60_000
TOP4 = "17,47,43,161"  # the demo study's four top-ranked trials (tests/leaderboard_tests/test_pages.py checks it)


def _answers(url: str, proc: subprocess.Popen[str], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the leaderboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def _leaderboard(storage: str, folder: Path, *extra: str) -> Iterator[str]:
    """``python -m leaderboard --storage URL EXTRA`` on a free port, as a user starts it; yields its address."""
    port = free_port()
    log = folder / f"leaderboard-{port}.log"
    with log.open("w") as sink:  # the child keeps its own copy of the file
        proc = spawn(
            "leaderboard", "--storage", storage, "--port", str(port), *extra,
            cwd=folder, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, proc, log), 60, 0.25, what="the leaderboard answering on /_stcore/health")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def app_url(study_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A read-only leaderboard on the synthetic studies."""
    with _leaderboard(study_db, tmp_path_factory.mktemp("e2e")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=WINDOW, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def _table(page: Page) -> tuple[list[str], list[list[str]]]:
    """The ranking table's column headers and rows, from the grid's accessible DOM (the grid paints
    on a canvas; the cells in view, and one column beyond, are also in the DOM for screen readers)."""
    page.locator("[data-testid='stDataFrame'] [role='gridcell']").first.wait_for(state="attached")
    grid = page.locator("[data-testid='stDataFrame']").first
    headers = [h.strip() for h in grid.locator("[role='columnheader']").all_text_contents()]
    rows = [
        [c.strip() for c in row.locator("[role='gridcell']").all_text_contents()]
        for row in grid.locator("[role='row']").all()
    ]
    return headers, [r for r in rows if r]


def _screenshot(page: Page, folder: Path, name: str) -> None:
    """The picture, kept for a person to look at when $CXR_SCREENSHOT_DIR is set."""
    shot = folder / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("CXR_SCREENSHOT_DIR"):
        target = Path(os.environ["CXR_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)


def test_the_ranking_shows_the_winner_and_the_covid_figures_without_scrolling(
    app_url: str, page: Page, tmp_path: Path
) -> None:
    page.goto(f"{app_url}/?study=demo")
    top = page.get_by_text("Top-ranked: trial", exact=False)
    top.wait_for()
    assert top.inner_text().startswith(f"Top-ranked: trial {WINNER} (")
    page.get_by_text("Ranked by COVID sensitivity @ target ↓, then lung focus ↓, then COVID AUC ↓").wait_for()
    headers, rows = _table(page)
    # The default chart has drawn its points: Plotly's scatter traces are in the page.
    page.locator("[data-testid='stPlotlyChart'] .scatterlayer .trace").first.wait_for()
    _screenshot(page, tmp_path, "leaderboard")
    assert headers[:5] == ["rank", "trial", "review", "backbone", "scheme"], headers
    covid = ["COVID sens", "CI low", "CI high", "COVID spec", "threshold", "COVID AUC", "lung focus"]
    assert set(covid) <= set(headers[:-1]), f"the COVID figures in view of a 1,500 px window, but saw {headers}"
    assert len(rows) >= 10, f"a page of ranked trials, but the table shows {len(rows)} row(s)"
    assert [row[0] for row in rows] == [str(rank) for rank in range(1, len(rows) + 1)], "rows in rank order"
    assert rows[0][1] == str(WINNER), rows[0]
    # The navigation names every page, and the top trial is one click away.
    for name in ("Ranking", "Trial", "Compare trials", "Studies side by side"):
        page.get_by_role("link", name=name).first.wait_for()
    page.get_by_role("link", name=f"Open the top-ranked trial ({WINNER})").click()
    page.get_by_text(f"Trial {WINNER} — COMPLETE").wait_for()
    assert page.url.split("/")[-1] == f"trial?study=demo&trial={WINNER}"


def test_ticking_two_rows_opens_their_comparison(app_url: str, page: Page) -> None:
    page.goto(f"{app_url}/?study=demo")
    _, rows = _table(page)
    box = page.locator("[data-testid='stDataFrame']").first.bounding_box()
    assert box is not None
    for k in (0, 1):  # the row markers: the grid's first column, under its 35 px header, 35 px a row
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 35 * k + 17)
        page.wait_for_timeout(300)
    first, second = rows[0][1], rows[1][1]
    page.get_by_role("link", name=f"Compare trials {first}, {second} side by side", exact=True).click()
    page.locator(".st-key-compare-overlays [data-testid='stImage'] img").nth(7).wait_for()
    assert page.url.split("/")[-1] == f"compare?study=demo&trials={first}%2C{second}"
    assert page.locator(".st-key-compare-overlays [data-testid='stImage'] img").count() == 8


def test_the_downloaded_csv_has_the_rows_of_the_table(app_url: str, study_db: str, page: Page) -> None:
    page.goto(f"{app_url}/?study=demo")
    _, rows = _table(page)
    label = page.get_by_text("Page (of", exact=False).inner_text()  # "Page (of 3; 137 trials)"
    total = int(label.split("; ")[1].split(" ")[0])
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the ranked table (.csv, every page)").click()
    assert download.value.suggested_filename == "demo-ranking.csv"
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(table) == total, f"every page of the table: {total} trials, but the CSV has {len(table)}"
    shown = [(row[0], row[1]) for row in rows]
    assert [(r["rank"], r["trial_number"]) for r in table[: len(shown)]] == shown, "the table's rows, in its order"
    assert {"review", "reviewer", "op_sensitivity", "op_sensitivity_low", "lung_focus"} <= set(table[0])
    expected, _ = D.ranking(D.read_only_engine(study_db), "demo", page_size=total)
    assert [int(r["trial_number"]) for r in table] == expected["trial_number"].tolist()


def test_a_trial_page_by_its_address(app_url: str, page: Page, tmp_path: Path) -> None:
    page.goto(f"{app_url}/trial?study=demo&trial=42")
    page.get_by_text("Trial 42 — ", exact=False).first.wait_for()
    page.get_by_text("What it gets wrong").wait_for()
    mistakes = page.locator(".st-key-mistakes [data-testid='stImage'] img")
    mistakes.nth(7).wait_for()
    _screenshot(page, tmp_path, "trial")
    assert mistakes.count() == 8, "up to 8 misclassified validation images, all shown"
    assert page.get_by_text("misclassified validation images shown", exact=False).count() == 1
    captions = page.locator(".st-key-mistakes [data-testid='stCaptionContainer']").all_inner_texts()
    kinds = [c.split(":")[0] for c in captions]
    order = {"missed COVID": 0, "false COVID": 1, "other confusion": 2}
    assert [order[k] for k in kinds] == sorted(order[k] for k in kinds), f"missed COVID first, but got {kinds}"
    assert page.get_by_text("This page is read-only. To record a verdict", exact=False).count() == 1
    assert page.get_by_role("button", name="Record the verdict", exact=False).count() == 0


def test_the_compare_grid_shows_every_overlay(app_url: str, study_db: str, page: Page, tmp_path: Path) -> None:
    from leaderboard import comparison as C

    engine = D.read_only_engine(study_db)
    details = {n: D.trial_detail(engine, "demo", int(n)) for n in TOP4.split(",")}
    diff = C.config_diff({n: d.config for n, d in details.items() if d is not None})
    assert len(diff.columns) > 4, "four trials' configurations"
    page.goto(f"{app_url}/compare?study=demo&trials={TOP4}")
    overlays = page.locator(".st-key-compare-overlays [data-testid='stImage'] img")
    overlays.nth(15).wait_for()
    page.locator("[data-testid='stPlotlyChart'] .scatterlayer .trace").first.wait_for()
    _screenshot(page, tmp_path, "compare")
    assert overlays.count() == 16, "four overlays of each of the four trials"
    for label in TOP4.split(","):
        assert page.locator(".st-key-compare-overlays").get_by_text(f"Trial {label}", exact=True).count() == 1
    assert int(diff["differs"].sum()) >= 6, "the top trials differ in most of their configuration"
    assert page.get_by_text(f"{int(diff['differs'].sum())} of {len(diff)} parameters differ", exact=False).count() == 1
    assert page.get_by_text("Validation, test and external rows").count() == 1
    assert page.locator(".st-key-compare-overlays").get_by_text("COVID-101").count() == 4, "one image, four trials"


def test_two_studies_side_by_side(app_url: str, page: Page) -> None:
    page.goto(f"{app_url}/studies?studies=demo,second&study=demo")
    page.get_by_text("Best COVID sensitivity @ target so far").wait_for()
    page.get_by_text("Completed trials: distribution").wait_for()
    assert page.locator("[data-testid='stPlotlyChart']").count() == 2
    assert page.locator("[data-testid='stAlertContentError']").count() == 0


def test_a_review_survives_a_reload(writable_db: str, browser: Browser, tmp_path: Path) -> None:
    with _leaderboard(writable_db, tmp_path, "--reviewer", "Dr E2E") as url:
        context = browser.new_context(viewport=WINDOW)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/trial?study=demo&trial={WINNER}")
        page.get_by_text("Review: not reviewed").wait_for()
        page.get_by_text("reads a shortcut", exact=True).click()
        page.get_by_label("Note").fill("reads the L marker, not the lungs")
        page.get_by_role("button", name="Record the verdict as Dr E2E").click()
        verdict = "Review: reads a shortcut — Dr E2E, "
        page.get_by_text(verdict, exact=False).wait_for()
        page.reload()
        page.get_by_text(verdict, exact=False).wait_for()
        assert page.get_by_text(verdict, exact=False).inner_text().endswith(": reads the L marker, not the lungs")
        page.goto(f"{url}/?study=demo")
        top = page.get_by_text("Top-ranked: trial", exact=False)
        top.wait_for()
        assert top.inner_text().endswith(
            "— Dr E2E marked it as reading a shortcut, so the default export never chooses it"
        )
        _, rows = _table(page)
        assert rows[0][1:3] == [str(WINNER), "shortcut"], rows[0]
        context.close()
