"""Whether this process has received Ctrl-C (SIGINT), for recording why a trial stopped.

The handler raises ``KeyboardInterrupt`` wherever Python happens to be. Inside a C extension
(TensorFlow, NumPy) that can surface as another error, e.g. ``SystemError: ... bad argument to
internal function``, with the interrupt lost from the chain; the flag still says what happened.
"""

from __future__ import annotations

__all__ = ["interrupt_received", "mark_interrupted"]

_received = False


def mark_interrupted() -> None:
    global _received
    _received = True


def interrupt_received() -> bool:
    return _received
