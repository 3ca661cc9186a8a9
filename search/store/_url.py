"""The results database URL: one rule for every command, and never a password on show.

Every command takes ``--storage URL`` and, without it, ``$CXR_STORAGE``, then the embedded
default. A URL with a password belongs in the environment (or a secret mounted as one):
command lines are visible to every user of the machine in ``ps``.
"""

from __future__ import annotations

import argparse
import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from search._errors import SearchError
from search._settings import DEFAULT_STORAGE, Settings, settings

__all__ = ["DEFAULT_STORAGE", "STORAGE_VARIABLE", "add_storage_argument", "mask_url", "parse_url"]

STORAGE_VARIABLE = Settings.variable("storage")

# Query parameters libpq and the drivers accept secrets in.
_SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "sslpassword", "secret", "token"})
_USERINFO_SECRET = re.compile(r":[^:@/]*@")
_QUERY_SECRET = re.compile(r"(?i)\b(" + "|".join(sorted(_SECRET_PARAMETERS)) + r")=[^&\s]*")


def add_storage_argument(parser: argparse.ArgumentParser, *, help_text: str = "database URL") -> None:
    """``--storage``, defaulting to ``$CXR_STORAGE`` and then the embedded SQLite file.

    The default is read when the parser is built: a command checks its settings before that.
    """
    parser.add_argument(
        "--storage",
        default=settings().storage,
        help=f"{help_text} (default: ${STORAGE_VARIABLE}, else {DEFAULT_STORAGE}; "
        f"pass a URL with a password through ${STORAGE_VARIABLE}, not the command line)",
    )


def parse_url(url: str) -> URL:
    """The URL parsed, or one sentence (with the password masked) saying why it is not one."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        raise SearchError(
            f"`--storage` must be a database URL such as {DEFAULT_STORAGE} or postgresql+psycopg://USER@HOST/DB, "
            f"but got {mask_url(url)!r}."
        ) from None
    return parsed


def mask_url(url: str) -> str:
    """The URL with every password replaced by ``***``, for messages and pages; never raises.

    A URL that cannot be parsed (a typo) is scrubbed by pattern instead of shown raw.
    """
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        shown = _USERINFO_SECRET.sub(":***@", url)
    return _QUERY_SECRET.sub(r"\1=***", shown)
