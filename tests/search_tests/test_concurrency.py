"""Writers at once: many records of one trial, two launches of one new study (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from search.space import TrialConfig
from search.store import ResultStore, TrialRow, config_row
from tests.conftest import BASE, REPO


def _url(kind: str, tmp_path: Path, postgres: str | None) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}" if kind == "sqlite" else str(postgres)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return _url(request.param, tmp_path, postgres)


def test_forty_records_of_one_trial_at_once_leave_one_row(url: str, request: pytest.FixtureRequest) -> None:
    store = ResultStore(url)
    store.create_schema()
    study = f"race-{request.node.callspec.id}"
    config = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")

    def record(i: int) -> int:
        row = config_row(study, 7, config, "FAIL")
        row.error = f"writer {i}"
        return store.record(row)

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(record, range(40)))  # an error in any writer is raised here
    assert len(ids) == 40
    with Session(store.engine) as session:
        count = session.scalar(select(func.count()).select_from(TrialRow).where(TrialRow.study_name == study))
    assert count == 1


# Everything launch does before its first trial; a sentence is printed as launch prints it,
# anything else (IntegrityError, KeyError) with its traceback.
_PREPARE = """
import sys
from search import SearchError
from search.launch import parse_args, prepare
try:
    prepare(parse_args(sys.argv[1:]))
except SearchError as exc:
    sys.exit(f"error: {exc}")
"""


def _prepare(data: Path, url: str, study: str, cwd: Path) -> subprocess.Popen[str]:
    flags = ["--trials", "1", "--data", str(data), "--storage", url, "--study", study, *BASE]
    argv = [sys.executable, "-c", _PREPARE, *flags]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_two_launches_of_one_new_study_take_turns(url: str, tmp_path: Path, round_: int) -> None:
    one = make_synthetic_dataset(tmp_path / "one", SyntheticSpec(per_class=6, size=32, seed=1))
    two = make_synthetic_dataset(tmp_path / "two", SyntheticSpec(per_class=6, size=32, seed=2))
    study = f"twin-{tmp_path.name}"
    first, second = _prepare(one, url, study, tmp_path), _prepare(two, url, study, tmp_path)
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "A resumed study must see the same dataset" in loser.strip().splitlines()[-1], loser[-2000:]
    assert "Traceback" not in loser


@pytest.mark.slow
def test_two_launches_on_the_same_data_both_proceed(url: str, tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "data", SyntheticSpec(per_class=6, size=32, seed=1))
    study = f"same-{tmp_path.name}"
    runs = [_prepare(data, url, study, tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in runs]
    assert [code for code, _ in results] == [0, 0], results
