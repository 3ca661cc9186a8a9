"""Storage throughput: completed trials per second with 1, 4 and 16 worker processes.

    python -m bench.storage [--trials-per-worker 40] [--workers 1,4,16]

Each trial costs next to nothing (suggest the search space, report one epoch, write the
results row in one transaction, finish), so the table measures what the storage sustains:
Optuna's RDB storage with heartbeats plus the results store, on SQLite and on a real
PostgreSQL server started in a temporary folder.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import optuna

from search.space import load_space
from search.store import ResultStore, config_row

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(store: ResultStore, study_name: str) -> object:
    space = load_space()

    def objective(trial: optuna.Trial) -> float:
        config = space.suggest(trial, weights="none", seed=0)
        trial.report(0.5, 0)
        row = config_row(study_name, trial.number, config, "COMPLETE")
        row.covid_sensitivity, row.accuracy = 0.9, 0.9
        store.record(row)
        return 0.5

    return objective


def _worker(url: str, study_name: str, trials: int, index: int) -> None:
    from search import load_study, make_storage

    study, _ = load_study(make_storage(url), study_name, index)
    study.optimize(_objective(ResultStore(url), study_name), n_trials=trials)  # type: ignore[arg-type]


def _run(url: str, workers: int, per_worker: int) -> float:
    from search import StudyInfo, create_study, make_storage

    name = f"bench-{workers}-{time.monotonic_ns()}"
    info = StudyInfo(load_space(), "/nowhere", "0" * 16, "none", 0, 0, "/tmp", "/tmp")
    create_study(make_storage(url), name, info)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(url, name, per_worker, i)) for i in range(workers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    done = sum(
        t.state == optuna.trial.TrialState.COMPLETE for t in optuna.load_study(study_name=name, storage=url).trials
    )
    assert done == workers * per_worker, (done, workers * per_worker)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials-per-worker", type=int, default=40)
    parser.add_argument("--workers", default="1,4,16")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = f"sqlite:///{Path(tmp) / 'optuna.db'}"
            for url, label in ((sqlite, "SQLite"), (server.url, "PostgreSQL")):
                ResultStore(url).create_schema()
                for workers in counts:
                    rows.append((label, workers, _run(url, workers, args.trials_per_worker)))
    finally:
        server.stop()
    print(f"{os.cpu_count()} CPU cores, {args.trials_per_worker} near-zero-cost trials per worker process\n")
    print(f"{'storage':<12} {'workers':>7} {'completed trials/s':>19}")
    for label, workers, rate in rows:
        print(f"{label:<12} {workers:>7} {rate:>19.1f}")


if __name__ == "__main__":
    main()
