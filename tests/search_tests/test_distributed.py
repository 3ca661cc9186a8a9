"""Many workers on one study: PostgreSQL and SQLite, a killed worker, a restarted database."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.launch import parse_args, prepare
from search.store import ResultStore
from tests.conftest import child_env, launch, spawn, wait_until
from tests.postgres import PostgresServer

pytestmark = pytest.mark.slow

FAST = [
    "--weights",
    "none",
    "--image-size",
    "32",
    "--max-epochs",
    "1",
    "--backbones",
    "MobileNet_0.25",
    "--pruner",
    "none",
]


def _states(storage: str, study: str = "cxr-search") -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name=study, storage=storage).get_trials()]


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def test_four_recycled_workers_finish_sixteen_trials_exactly_once(
    backend: str, request: pytest.FixtureRequest, tiny: Path, tmp_path: Path
) -> None:
    postgres: str = request.getfixturevalue("postgres") if backend == "postgresql" else ""
    storage = postgres if backend == "postgresql" else f"sqlite:///{tmp_path / 'optuna.db'}"
    study = f"sixteen-{backend}"
    # Four trials per worker slot and a fresh process every three: the second process of each
    # slot starts while the other slots are mid-trial, so claims race across restarts too.
    done = launch(
        "--trials", "16", "--workers", "4", "--recycle-after", "3", "--study", study, "--storage", storage,
        "--data", str(tiny), "--artifacts", str(tmp_path / "artifacts"), "--cache-dir", str(tmp_path / "cache"),
        "--keep-models", "0", *FAST, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert _states(storage, study) == [TrialState.COMPLETE] * 16
    rows = ResultStore(storage).trials(study)
    assert sorted(r.trial_number for r in rows) == list(range(16)), "one row per trial, no duplicates"
    assert {r.state for r in rows} == {"COMPLETE"}


def _worker(storage: str, study: str, trials: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return spawn("search.worker", "--storage", storage, "--study", study, "--trials", str(trials), cwd=cwd, env=env)


def _started(storage: str, study: str) -> bool:
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    return bool(trials) and trials[0].state == TrialState.RUNNING and bool(trials[0].user_attrs.get("config"))


def test_a_killed_worker_leaves_a_failed_trial_that_another_retries(postgres: str, tiny: Path, tmp_path: Path) -> None:
    study = "killed"
    args = [
        "--trials",
        "1",
        "--study",
        study,
        "--storage",
        postgres,
        "--data",
        str(tiny),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    prepare(
        parse_args([*args, "--artifacts", str(tmp_path / "a"), *FAST[:-4], "--max-epochs", "3", "--pruner", "none"])
    )
    env = child_env(CXR_HEARTBEAT_INTERVAL_S="1", CXR_HEARTBEAT_GRACE_S="3")
    doomed = _worker(postgres, study, 1, env, tmp_path)
    wait_until(lambda: _started(postgres, study), 120, 0.5, what="the first worker starting its trial")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    # Past the grace period the trial's heartbeat is stale: the criterion the next worker applies.
    watcher = optuna.storages.RDBStorage(postgres, heartbeat_interval=1, grace_period=3)
    study_id = watcher.get_study_id_from_name(study)
    wait_until(
        lambda: watcher._get_stale_trial_ids(study_id), 30, 0.25, what="the killed trial's heartbeat going stale"
    )
    rescuer = _worker(postgres, study, 1, env, tmp_path)
    _, err = rescuer.communicate(timeout=300)
    assert rescuer.returncode == 0, err[-3000:]
    first, retry = optuna.load_study(study_name=study, storage=postgres).get_trials()
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == first.number
    assert retry.params == first.params
    rows = {r.trial_number: r for r in ResultStore(postgres).trials(study)}
    assert rows[first.number].state == "FAIL" and rows[first.number].error == "worker lost (no heartbeat)"
    assert rows[retry.number].state == "COMPLETE"


def test_a_database_restart_mid_run_loses_no_completed_result(
    postgres_server: PostgresServer, tiny: Path, tmp_path: Path
) -> None:
    storage = postgres_server.url
    proc = spawn("search.launch", "--trials", "10", "--workers", "2", "--storage", storage, "--data", str(tiny),
                 "--keep-models", "0", *FAST, cwd=tmp_path)  # fmt: skip
    store = ResultStore(storage)

    def two_completed() -> list[int]:
        done = [r.trial_number for r in store.trials("cxr-search") if r.state == "COMPLETE"]
        return done if len(done) >= 2 else []

    # Until launch has made the tables, reading them fails: that is "not yet".
    before = wait_until(two_completed, 240, 0.5, what="two trials completing before the restart", ignoring=(Exception,))
    store.dispose()
    postgres_server.restart()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    completed = {
        t.number
        for t in optuna.load_study(study_name="cxr-search", storage=storage).get_trials()
        if t.state == TrialState.COMPLETE
    }
    rows = ResultStore(storage).trials("cxr-search")
    assert len(rows) == len({r.trial_number for r in rows}), "no duplicate rows"
    stored = {r.trial_number for r in rows if r.state == "COMPLETE"}
    assert set(before) <= stored, "results completed before the restart are still there"
    assert completed <= stored, "every trial Optuna completed has its results"
    assert len(stored) >= 8, {r.trial_number: (r.state, r.error) for r in rows}
