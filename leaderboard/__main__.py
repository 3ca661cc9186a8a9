"""``python -m leaderboard --storage URL [--reviewer NAME]``: start the Streamlit leaderboard on 127.0.0.1.

Pages: Ranking ``/?study=S``, Trial ``/trial?study=S&trial=N``, Compare
``/compare?study=S&trials=3,7,9`` and Studies ``/studies?studies=A,B``. Read-only unless started
with ``--reviewer NAME`` (verdicts are recorded under that name) or ``--allow-export``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from streamlit.web import cli as streamlit_cli

from leaderboard.exports import ALLOW_VARIABLE
from search import SearchError, check_settings
from search.store import STORAGE_VARIABLE, add_storage_argument, check_reviewer


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
    parser.add_argument(
        "--reviewer",
        metavar="NAME",
        help="record reviewers' verdicts under NAME (the page's only writable connection: needs a database role "
        "that may insert into cxr_reviews); without it the page is read-only",
    )
    args = parser.parse_args(argv)
    script_args = []
    if args.reviewer is not None:
        try:
            script_args = ["--", "--reviewer", check_reviewer(args.reviewer)]
        except SearchError as exc:
            parser.error(str(exc))
    os.environ[STORAGE_VARIABLE] = args.storage  # to the page by environment: never on a command line
    if args.allow_export:
        os.environ[ALLOW_VARIABLE] = "1"
    app = Path(__file__).with_name("app.py")
    sys.argv = [
        "streamlit", "run", str(app),
        "--server.address", args.host, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
        *script_args,  # the reviewer's name reaches the page as its own argument (a name, not a secret)
    ]  # fmt: skip
    sys.exit(streamlit_cli.main())


if __name__ == "__main__":
    main()
