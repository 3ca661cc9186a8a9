"""``python -m leaderboard --storage URL``: start the Streamlit leaderboard on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streamlit.web import cli as streamlit_cli

from leaderboard.exports import ALLOW_VARIABLE
from search import check_settings
from search.store import STORAGE_VARIABLE, add_storage_argument


def main(argv: Sequence[str] | None = None) -> None:
    check_settings()  # a bad variable is one sentence here, not a traceback in the page
    parser = argparse.ArgumentParser(prog="python -m leaderboard", description=__doc__)
    add_storage_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument(
        "--allow-export",
        action="store_true",
        help="offer the export button (it evaluates on the test split and writes that row to the database)",
    )
    args = parser.parse_args(argv)
    os.environ[STORAGE_VARIABLE] = args.storage  # to the page by environment: never on a command line
    if args.allow_export:
        os.environ[ALLOW_VARIABLE] = "1"
    app = Path(__file__).with_name("app.py")
    sys.argv = [
        "streamlit", "run", str(app),
        "--server.address", args.host, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    sys.exit(streamlit_cli.main())


if __name__ == "__main__":
    main()
