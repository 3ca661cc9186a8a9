"""``python -m search.worker``: join an existing study and run trials until told to stop.

Launch runs these as local processes; on other machines run the same command against the
shared database:

    CXR_STORAGE=postgresql+psycopg://user@host/db python -m search.worker --study NAME [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cxrdata import DatasetError
from search._errors import SearchError
from search._interrupt import mark_interrupted
from search._settings import check_settings
from search.logging import get_logger
from search.store import add_storage_argument

_logger = get_logger(__name__)

__all__ = ["WorkerJob", "interrupt_once", "main", "record_lost_trials", "run_worker", "select_gpu"]


@dataclass(frozen=True)
class WorkerJob:
    storage: str
    study: str
    n_trials: int
    data: str | None = None  # None: the path the study was created with
    worker_index: int = 0
    gpu: int | None = None
    keep_models: int = 5
    quiet: bool = True
    handle_sigint: bool = True  # off when embedded in another program (tests)
    deadline: float | None = None  # time.time() after which no new trial starts


def interrupt_once() -> None:
    """The first Ctrl-C stops the running trial (recorded as failed); later ones are ignored
    so that recording cannot be cut short (a terminal sends SIGINT to every worker and launch
    forwards it too)."""

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        mark_interrupted()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def select_gpu(gpu: int | None) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def record_lost_trials(study: Any, store: Any) -> int:
    """Give failed trials whose worker died without a word (SIGKILL, power loss) a FAIL row, so
    the results store shows what Optuna shows; return how many were added."""
    from optuna.trial import TrialState

    from search._recording import failure_row
    from search.space import TrialConfig

    known = {row.trial_number for row in store.trials(study.study_name)}
    added = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        config = trial.user_attrs.get("config")
        if trial.number in known or config is None:
            continue
        row = failure_row(study.study_name, trial.number, TrialConfig.from_dict(config), "worker lost (no heartbeat)")
        store.record(row)
        added += 1
    return added


def run_worker(job: WorkerJob) -> int:
    """Run up to ``job.n_trials`` trials of the study in this process; return how many ran."""
    select_gpu(job.gpu)
    if job.handle_sigint:
        interrupt_once()
    import optuna  # imported here: launch's parent process never loads TensorFlow

    from search._objective import ENGINE, Objective
    from search._runtime import open_runtime

    if job.quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    runtime = open_runtime(job.storage, job.study, data=job.data, worker_index=job.worker_index)
    optuna.storages.fail_stale_trials(runtime.study)  # a stale trial is only failed when someone checks
    record_lost_trials(runtime.study, runtime.store)
    objective = Objective(
        space=runtime.info.space,
        data=runtime.data,
        recorder=runtime.recorder(ENGINE, job.keep_models),
        weights=runtime.info.weights,
        seed=runtime.info.seed,
    )
    return _optimize(runtime.study, objective, job.n_trials, deadline=job.deadline)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or an exception it was raised from or during is one of ``kinds``.

    Optuna can hide a lost database behind another error: when telling a trial fails and
    reading it back fails too, its clean-up raises ``UnboundLocalError`` during the storage
    error, which then survives only as ``__context__``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _optimize(
    study: Any,
    objective: Any,
    n_trials: int,
    wait_s: float = 5.0,
    patience_s: float = 600.0,
    deadline: float | None = None,
) -> int:
    """Run ``n_trials`` trials, riding out a database that goes away for a while (a restart):
    the trial in flight fails, the worker waits and goes on with the trials it still owes."""
    import tensorflow as tf
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    finished = 0
    in_flight = False  # a trial of ours was created and has not been told yet

    def count(_study: Any, _trial: Any) -> None:
        nonlocal finished, in_flight
        finished, in_flight = finished + 1, False

    def tracked(trial: Any) -> Any:
        nonlocal in_flight
        in_flight = True
        return objective(trial)

    down_since: float | None = None
    while finished < n_trials:
        timeout = None if deadline is None else deadline - time.time()
        if timeout is not None and timeout <= 0:
            break
        try:
            study.optimize(
                tracked,
                n_trials=n_trials - finished,
                timeout=timeout,
                catch=(tf.errors.ResourceExhaustedError,),
                callbacks=[count],
                gc_after_trial=True,
            )
        except Exception as exc:
            if not _caused_by(exc, (StorageInternalError, SQLAlchemyError)):
                raise
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > patience_s:
                raise SearchError(
                    f"The study database must come back within {patience_s:.0f} s, but it did not ({exc})."
                ) from None
            _logger.warning(f"database unavailable ({type(exc).__name__}); retrying in {wait_s:.0f} s")
            time.sleep(wait_s)
            # A trial in flight is lost (failed): do not run it twice. A retry that failed
            # before creating a trial cost nothing, so the worker still owes that trial.
            if in_flight:
                finished, in_flight = finished + 1, False
        else:
            down_since = None
            if deadline is not None and time.time() >= deadline:
                break
    return finished


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()  # a mistyped variable: one sentence here, not a traceback from every trial
    parser = argparse.ArgumentParser(prog="python -m search.worker", description=(__doc__ or "").splitlines()[0])
    add_storage_argument(parser, help_text="database URL shared by all workers")
    parser.add_argument("--study", required=True, help="name of an existing study (made by search.launch)")
    parser.add_argument("--trials", type=int, default=10**9, help="stop after this many trials (default: run on)")
    parser.add_argument("--data", help="dataset path on this machine (default: the path the study was created with)")
    parser.add_argument("--gpu", type=int, help="GPU index to use (default: all visible)")
    parser.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    args = parser.parse_args(argv)
    if args.trials < 1:
        print(f"error: `--trials >= 1` must hold, but got {args.trials}.", file=sys.stderr)
        return 1
    if args.timeout is not None and args.timeout <= 0:
        print(f"error: `--timeout > 0` must hold, but got {args.timeout}.", file=sys.stderr)
        return 1
    deadline = None if args.timeout is None else time.time() + args.timeout
    job = WorkerJob(args.storage, args.study, args.trials, data=args.data, gpu=args.gpu, quiet=False, deadline=deadline)
    try:
        run_worker(job)
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
