"""Running the plan: local worker processes (or the KerasTuner child), progress, Ctrl-C."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

from tqdm import tqdm

from search._study import study_ranking
from search.launch._plan import Plan
from search.logging import get_logger
from search.store import ResultStore
from search.worker import WorkerJob, interrupt_once, run_worker, select_gpu

_logger = get_logger(__name__)

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_WORKER_DIED", "run_tuner", "run_workers"]


POLL_S = 2.0


def _child(job: WorkerJob) -> None:
    try:
        run_worker(job)
    except KeyboardInterrupt:
        sys.exit(130)


def _shares(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


class _Progress:
    """A progress bar fed by polling the study: counts by state and the best-ranked figure."""

    def __init__(self, plan: Plan, before: int) -> None:
        import optuna

        self.study = optuna.load_study(study_name=plan.study, storage=plan.storage)
        self.store = ResultStore(plan.storage)
        self.ranking = study_ranking(plan.space)
        self.before = before
        self.total = plan.trials
        self.bar = tqdm(total=plan.trials, desc="Trials", unit="trial")
        self.shown: tuple[object, ...] = ()

    def update(self) -> None:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        # The database may be briefly away (a restart): the next poll catches up.
        with contextlib.suppress(SQLAlchemyError, StorageInternalError):
            self._update()

    def _update(self) -> None:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)[self.before :]
        done = [t for t in trials if t.state.is_finished()]
        counts = {s: sum(t.state == s for t in done) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        best = self.store.ranked(self.study.study_name, limit=1, ranking=self.ranking)
        sens = best[0].op_sensitivity if best else None
        state = (len(done), *counts.values(), sens)
        if state == self.shown:
            return  # redraw only on change: logs stay short when output is not a terminal
        self.shown = state
        self.bar.set_postfix(
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            best_sens_at_target="-" if sens is None else f"{sens:.3f}",
        )
        self.bar.n = min(len(done), self.total)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """Ctrl-C sets an event instead of raising: an exception raised inside a database call
    could be swallowed as a database error (SQLite reports an interrupted query as one)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread; KeyboardInterrupt still works
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


EXIT_OK, EXIT_WORKER_DIED, EXIT_INTERRUPTED = 0, 1, 130


def run_workers(plan: Plan) -> int:
    """Run the plan's trials in local processes; return the launch's exit status.

    A worker that dies (killed for memory, a crash) gets no further trials, since it would
    most likely die again; the others go on, and the launch ends with a non-zero status.
    """
    import optuna

    before = len(optuna.load_study(study_name=plan.study, storage=plan.storage).get_trials(deepcopy=False))
    remaining = _shares(plan.trials, plan.workers)
    deadline = None if plan.timeout_s is None else time.time() + plan.timeout_s
    ctx = mp.get_context("spawn")
    slots: list[mp.process.BaseProcess | None] = [None] * plan.workers
    progress = _Progress(plan, before)
    interrupted, died = False, False
    try:
        with _ctrl_c() as stop:
            while not stop.is_set():
                for i in range(plan.workers):
                    proc = slots[i]
                    if proc is not None and not proc.is_alive():
                        proc.join()
                        slots[i] = None
                        if proc.exitcode != 0 and not stop.is_set():
                            died, remaining[i] = True, 0
                            _logger.error(
                                f"worker {i} must exit cleanly, but it stopped with exit code "
                                f"{proc.exitcode} (see its error above); it gets no more trials."
                            )
                    if deadline is not None and time.time() >= deadline:
                        remaining[i] = 0  # out of time: start nothing new
                    if slots[i] is None and remaining[i] > 0:
                        # A fresh process every `recycle_after` trials keeps memory flat.
                        n = min(remaining[i], plan.recycle_after)
                        remaining[i] -= n
                        job = WorkerJob(
                            plan.storage,
                            plan.study,
                            n,
                            data=plan.data,
                            worker_index=i,
                            keep_models=plan.keep_models,
                            deadline=deadline,
                        )
                        slots[i] = ctx.Process(target=_child, args=(job,), name=f"cxr-worker-{i}")
                        slots[i].start()  # type: ignore[union-attr]
                progress.update()
                if all(s is None for s in slots) and not any(remaining):
                    break
                stop.wait(POLL_S)
            interrupted = stop.is_set()
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        _logger.info("Stopping: the running trials are recorded as failed; completed trials are kept.")
        for proc in slots:
            if proc is not None and proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGINT)
        for proc in slots:
            if proc is not None:
                proc.join(timeout=120)
    progress.update()
    progress.close()
    return EXIT_INTERRUPTED if interrupted else EXIT_WORKER_DIED if died else EXIT_OK


def _tuner_child(plan: Plan, deadline: float | None) -> None:
    from search.kerastuner import run_keras_tuner

    select_gpu(plan.gpus[0] if plan.gpus else None)
    interrupt_once()
    try:
        run_keras_tuner(
            plan.storage, plan.study, plan.tuner, plan.trials, data=plan.data, keep_models=plan.keep_models,
            deadline=deadline,
        )  # fmt: skip
    except KeyboardInterrupt:
        sys.exit(130)


def run_tuner(plan: Plan) -> int:
    """Run the KerasTuner engine in one child process; return the launch's exit status."""
    deadline = None if plan.timeout_s is None else time.time() + plan.timeout_s
    proc = mp.get_context("spawn").Process(target=_tuner_child, args=(plan, deadline), name="cxr-keras-tuner")
    proc.start()
    with _ctrl_c() as stop:
        while proc.is_alive() and not stop.wait(POLL_S):
            pass
    if stop.is_set():
        _logger.info("Stopping: the running trial is recorded as failed; completed trials are kept.")
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGINT)
        proc.join(timeout=120)
        return EXIT_INTERRUPTED
    proc.join()
    return EXIT_OK if proc.exitcode == 0 else EXIT_WORKER_DIED
