"""Leaderboard speed on a large study: query time, the pages' script runs, and what a browser waits.

    python -m bench.leaderboard [--trials 10000]

Builds a synthetic study of N trials in a temporary SQLite database, with what a search stores
for the trial page (four Grad-CAM overlays, validation probabilities and up to eight
misclassified images per completed trial), then measures the ranked first page in SQL, one
script run of the Ranking and Compare pages through Streamlit's AppTest, and the time a real
headless Chromium takes from navigation to the rendered ranking table and to a rendered 4-trial
comparison (16 overlays and the ROC curves drawn), on a first visit and after it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from leaderboard import data as D
from leaderboard.synthetic import make_synthetic_study

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def _serve(url: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "--storage", url, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    return proc, port


def _browser(url: str, sets: list[str]) -> dict[str, float]:
    """Seconds from navigation to the ranking table, and to a rendered comparison of 4 trials
    (``sets``: comma-separated trial numbers, each set compared once, then the first again)."""
    from playwright.sync_api import Page, sync_playwright

    def table(page: Page, address: str) -> float:
        start = time.perf_counter()
        page.goto(address)
        page.get_by_text("Top-ranked: trial").wait_for(timeout=120_000)
        page.locator("[data-testid='stDataFrame'] [role='gridcell']").first.wait_for(state="attached", timeout=120_000)
        return time.perf_counter() - start

    def comparison(page: Page, address: str) -> float:
        start = time.perf_counter()
        page.goto(address)
        page.locator(".st-key-compare-overlays [data-testid='stImage'] img").nth(15).wait_for(timeout=120_000)
        page.locator("[data-testid='stPlotlyChart'] .scatterlayer .trace").first.wait_for(timeout=120_000)
        return time.perf_counter() - start

    proc, port = _serve(url)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            first = table(page, f"{base}/?study=big")
            reloads = [table(page, f"{base}/?study=big") for _ in range(REPEATS)]
            compare = [comparison(page, f"{base}/compare?study=big&trials={s}") for s in sets]
            again = [comparison(page, f"{base}/compare?study=big&trials={sets[0]}") for _ in range(REPEATS)]
            browser.close()
        return {
            "ranking table, first visit": first,
            f"ranking table, reload (median of {REPEATS})": statistics.median(reloads),
            "comparison of 4 trials, first Compare page opened (its scripts load)": compare[0],
            f"comparison of 4 trials not compared before (median of {len(compare) - 1})": statistics.median(
                compare[1:]
            ),
            f"comparison of 4 trials, reload (median of {REPEATS})": statistics.median(again),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _apptest(url: str, study: str, trials: str) -> tuple[float, float]:
    """One script run of the Ranking page, then of the Compare page (cold caches in this process)."""
    from streamlit.testing.v1 import AppTest

    os.environ["CXR_STORAGE"] = url
    sys.argv = ["app.py"]
    app = AppTest.from_file(str(REPO / "leaderboard" / "app.py"), default_timeout=300)
    app.query_params["study"] = study
    start = time.perf_counter()
    app.run()
    ranking = time.perf_counter() - start
    assert not app.exception, app.exception
    app.query_params["trials"] = trials
    app.switch_page("views/compare.py")
    start = time.perf_counter()
    app.run()
    compare = time.perf_counter() - start
    assert not app.exception and not app.error, (app.exception, app.error)
    return ranking, compare


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument(
        "--storage", help="measure the study 'big' this benchmark wrote there before (its database URL), not a new one"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.storage or f"sqlite:///{Path(tmp) / 'optuna.db'}"
        start = time.perf_counter()
        if args.storage is None:
            make_synthetic_study(url, "big", args.trials, seed=1, artifacts=Path(tmp) / "artifacts")
        build = time.perf_counter() - start

        engine = D.read_only_engine(url)
        start = time.perf_counter()
        for _ in range(10):
            D.ranking(engine, "big")
        query = (time.perf_counter() - start) / 10
        top, _ = D.ranking(engine, "big", page_size=4 * (REPEATS + 2))
        numbers = [str(n) for n in top["trial_number"]]
        sets = [",".join(numbers[k : k + 4]) for k in range(4, len(numbers), 4)]

        ranking_run, compare_run = _apptest(url, "big", ",".join(numbers[:4]))
        browser = _browser(url, sets)
    written = f"written in {build:.1f} s" if args.storage is None else "written before"
    print(f"{args.trials} trials (synthetic study with overlays and mistakes {written})\n")
    width = 80
    print(f"{'measure':<{width}} {'seconds':>8}")
    print(f"{'ranked first page, SQL (mean of 10)':<{width}} {query:>8.3f}")
    print(f"{'Ranking page, first script run (AppTest)':<{width}} {ranking_run:>8.2f}")
    print(f"{'Compare page, 4 trials, first script run (AppTest)':<{width}} {compare_run:>8.2f}")
    for name, seconds in browser.items():
        print(f"{'browser, ' + name:<{width}} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
