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
