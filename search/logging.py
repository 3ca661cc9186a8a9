"""The library's diagnostics, as Optuna does it: one root logger, ``cxr_search``, with a stderr
handler of its own, added the first time a module asks for a logger.

So a warning reaches the terminal with no set-up, in the same plain words as a CLI's own
lines (``warning: ...``; progress lines bare), and an application silences or redirects it
with :func:`set_verbosity`, ``logging.getLogger("cxr_search").setLevel(...)``, or
:func:`disable_default_handler` plus :func:`enable_propagation`. A command's *result* (predict's
JSON lines, an export summary) is printed, never logged: a verbosity must not hide it.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

__all__ = [
    "LOGGER_NAME",
    "disable_default_handler",
    "disable_propagation",
    "enable_default_handler",
    "enable_propagation",
    "get_logger",
    "get_verbosity",
    "set_verbosity",
]

LOGGER_NAME = "cxr_search"  # the distribution's name: "search" alone would be anybody's logger

_lock = threading.Lock()
_default_handler: logging.Handler | None = None


class _PlainFormatter(logging.Formatter):
    """The message as the commands always printed it: bare, or ``warning: ``/``error: `` first."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record is emitted, not as it was when the handler
    was made, so redirections (pytest's capsys, ``contextlib.redirect_stderr``) see the lines."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def _root() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def _configure_root() -> None:
    global _default_handler
    with _lock:
        if _default_handler is not None:
            return
        _default_handler = _StderrHandler()
        _default_handler.setFormatter(_PlainFormatter("%(message)s"))
        root = _root()
        root.addHandler(_default_handler)
        if root.level == logging.NOTSET:  # a level the application set before importing us stays
            root.setLevel(logging.INFO)
        root.propagate = False  # else an application's root handler prints each line twice


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (pass ``__name__``), under the ``cxr_search`` root."""
    _configure_root()
    return logging.getLogger(name if name.startswith(f"{LOGGER_NAME}.") else f"{LOGGER_NAME}.{name}")


def set_verbosity(level: int) -> None:
    """The least severe level shown, e.g. ``logging.WARNING`` to drop progress lines."""
    _configure_root()
    _root().setLevel(level)


def get_verbosity() -> int:
    _configure_root()
    return _root().getEffectiveLevel()


def disable_default_handler() -> None:
    """Stop writing to stderr (for applications that route records elsewhere)."""
    _configure_root()
    assert _default_handler is not None
    _root().removeHandler(_default_handler)


def enable_default_handler() -> None:
    _configure_root()
    assert _default_handler is not None
    _root().addHandler(_default_handler)


def enable_propagation() -> None:
    """Pass records on to the application's root logger (pair with :func:`disable_default_handler`)."""
    _root().propagate = True


def disable_propagation() -> None:
    _root().propagate = False
