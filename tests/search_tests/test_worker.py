"""search.worker: which errors a worker rides out as a database outage."""

from __future__ import annotations

import pytest
from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import OperationalError

from search.worker import _caused_by

OUTAGE = (StorageInternalError, OperationalError)


def _raised_during(inner: BaseException, outer: BaseException) -> BaseException:
    """``outer`` raised while ``inner`` was being handled, as Optuna's clean-up does."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is what this builds
    except BaseException as exc:
        return exc


def _raised_from(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        raise outer from inner
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (StorageInternalError("commit failed"), True),
        (_raised_from(OperationalError("SELECT 1", {}, Exception("gone")), StorageInternalError("x")), True),
        # Optuna's _run_trial: telling fails, reading the trial back fails, `updated_state` is unbound.
        (_raised_during(StorageInternalError("commit failed"), UnboundLocalError("updated_state")), True),
        (ValueError("a bug in a trial"), False),
        (_raised_during(KeyError("k"), RuntimeError("another bug")), False),
    ],
)
def test_a_lost_database_is_recognised_behind_other_errors(exc: BaseException, outage: bool) -> None:
    assert _caused_by(exc, OUTAGE) is outage


@pytest.mark.parametrize(
    ("exc", "after_ctrl_c", "said"),
    [
        (KeyboardInterrupt(), False, "interrupted (Ctrl-C)"),
        # Ctrl-C inside a C extension can surface as another error, the interrupt lost
        (SystemError("Objects/listobject.c:338: bad argument to internal function"), True, "interrupted (Ctrl-C)"),
        (SystemError("bad argument to internal function"), False, "SystemError: bad argument to internal function"),
        (ValueError("no such layer"), False, "ValueError: no such layer"),
    ],
)
def test_a_failure_after_ctrl_c_is_recorded_as_interrupted(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, after_ctrl_c: bool, said: str
) -> None:
    import search._interrupt
    from search._recording import describe_failure

    monkeypatch.setattr(search._interrupt, "_received", after_ctrl_c)
    assert describe_failure(exc) == said


def test_the_worker_s_ctrl_c_handler_remembers_the_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal
    import time

    import search._interrupt
    from search.worker import interrupt_once

    monkeypatch.setattr(search._interrupt, "_received", False)
    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupt_once()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises within the sleep, long before its end
        assert search._interrupt.interrupt_received()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "later Ctrl-Cs are ignored"
    finally:
        signal.signal(signal.SIGINT, previous)
