"""``python -m search.store upgrade --storage URL``: bring an older results database up to date."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from search._settings import check_settings
from search.store._store import ResultStore
from search.store._upgrade import upgrade_schema
from search.store._url import add_storage_argument, mask_url


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()
    parser = argparse.ArgumentParser(prog="python -m search.store", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    upgrade = commands.add_parser("upgrade", help="add what a newer version needs; every row is kept")
    add_storage_argument(upgrade)
    args = parser.parse_args(argv)
    try:
        store = ResultStore(args.storage)
        before, after = upgrade_schema(store.engine)
    except (ValueError, OperationalError) as exc:
        reason = exc.orig if isinstance(exc, OperationalError) else exc
        print(f"error: {mask_url(args.storage)}: {reason}", file=sys.stderr)
        return 1
    if before == after:
        print(f"{mask_url(args.storage)} is already at results schema version {after}.")
    else:
        print(f"Upgraded {mask_url(args.storage)} from results schema version {before} to {after}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
