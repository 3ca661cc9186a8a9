"""Leaderboard speed on a large study: query time and the page's time to first table.

    python -m bench.leaderboard [--trials 10000]

Builds a synthetic study of N trials in a temporary SQLite database, then measures the ranked
first page in SQL, a full first run of the page through Streamlit's AppTest, and the time a
real headless Chromium takes from navigation to the rendered ranking table.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from leaderboard import data as D
from leaderboard.synthetic import make_synthetic_study

REPO = Path(__file__).resolve().parents[1]


def _browser_time_to_table(url: str) -> tuple[float, float]:
    """(first visit, reload): the first includes loading Streamlit's JavaScript bundle."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "--storage", url, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
            )
            page = browser.new_page()
            times = []
            for _ in range(2):
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/?study=big")
                page.get_by_text("Top-ranked: trial").wait_for(timeout=120_000)
                page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=120_000)
                times.append(time.perf_counter() - start)
            browser.close()
        return times[0], times[1]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        start = time.perf_counter()
        make_synthetic_study(url, "big", args.trials, seed=1)
        build = time.perf_counter() - start

        engine = D.read_only_engine(url)
        start = time.perf_counter()
        for _ in range(10):
            D.ranking(engine, "big")
        query = (time.perf_counter() - start) / 10

        from streamlit.testing.v1 import AppTest

        os.environ["CXR_STORAGE"] = url
        app = AppTest.from_file(str(REPO / "leaderboard" / "app.py"), default_timeout=300)
        app.query_params["study"] = "big"
        start = time.perf_counter()
        app.run()
        apptest = time.perf_counter() - start
        assert not app.exception, app.exception

        first, reload = _browser_time_to_table(url)
    print(f"{args.trials} trials (synthetic study written in {build:.1f} s)\n")
    print(f"{'measure':<52} {'seconds':>8}")
    print(f"{'ranked first page, SQL (mean of 10)':<52} {query:>8.3f}")
    print(f"{'whole page, first script run (AppTest)':<52} {apptest:>8.2f}")
    print(f"{'browser, first visit: navigation to ranking table':<52} {first:>8.2f}")
    print(f"{'browser, reload: navigation to ranking table':<52} {reload:>8.2f}")


if __name__ == "__main__":
    main()
