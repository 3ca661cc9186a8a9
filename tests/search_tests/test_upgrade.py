"""search.store upgrade: a results database of the previous schema version keeps its rows and gains the new columns."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from search._errors import SearchError
from search.space import TrialConfig
from search.store import SCHEMA_VERSION, ResultStore, config_row
from tests.conftest import run_module

CONFIG = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")
ADDED_IN_4 = (
    "covid_sensitivity_low", "covid_sensitivity_high", "covid_specificity_low", "covid_specificity_high", "op_target",
    "covid_threshold", "op_sensitivity", "op_sensitivity_low", "op_sensitivity_high", "op_specificity",
    "op_specificity_low", "op_specificity_high", "folds", "fold_spread_json",
)  # fmt: skip
ADDED_IN_5 = ("external_json",)
ADDED_IN_6 = ("mistakes_json",)
ADDED_IN_7 = ("input_region",)


def _version_3(path: Path) -> str:
    """A results database as version 3 left it, with two trials in it."""
    url = f"sqlite:///{path}"
    store = ResultStore(url)
    store.create_schema()
    for number, sensitivity in enumerate((0.9, 0.95)):
        row = config_row("old", number, replace(CONFIG, input_region=("full", "lung_mask")[number]), "COMPLETE")
        row.covid_sensitivity, row.covid_specificity = sensitivity, 0.9
        if number == 0:  # a config written before input regions existed
            row.config_json = json.dumps({k: v for k, v in json.loads(row.config_json).items() if k != "input_region"})
        store.record(row)
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_cxr_trials_rank_op"))
        conn.execute(text("DROP TABLE cxr_predictions"))
        conn.execute(text("DROP TABLE cxr_reviews"))
        for column in ADDED_IN_4 + ADDED_IN_5 + ADDED_IN_6 + ADDED_IN_7:
            conn.execute(text(f"ALTER TABLE cxr_trials DROP COLUMN {column}"))
        conn.execute(text("UPDATE cxr_schema SET value = '3' WHERE key = 'version'"))
    store.dispose()
    return url


def _upgrade(url: str) -> subprocess.CompletedProcess[str]:
    return run_module("search.store", "upgrade", "--storage", url)


def test_an_older_database_is_refused_with_the_command_that_upgrades_it(tmp_path: Path) -> None:
    url = _version_3(tmp_path / "old.db")
    with pytest.raises(
        SearchError, match=rf"must be version {SCHEMA_VERSION}, but .* has version 3; upgrade it in place with: "
    ):
        ResultStore(url).check_schema()


@pytest.mark.slow
def test_the_upgrade_keeps_every_row_and_adds_what_the_current_version_needs(tmp_path: Path) -> None:
    url = _version_3(tmp_path / "old.db")
    done = _upgrade(url)
    assert done.returncode == 0, done.stderr
    assert f"from results schema version 3 to {SCHEMA_VERSION}" in done.stdout
    store = ResultStore(url)
    store.check_schema()
    rows = store.trials("old")
    assert [(r.trial_number, r.covid_sensitivity) for r in rows] == [(0, 0.9), (1, 0.95)]
    assert rows[0].op_sensitivity is None, "old trials have no operating point: they rank as unknown"
    assert rows[0].mistakes_json is None and store.latest_verdicts("old") == {}, "the reviews table is there, empty"
    assert [r.input_region for r in rows] == ["full", "lung_mask"], "the region is read from each row's config"
    new = config_row("old", 2, CONFIG, "COMPLETE")
    new.op_sensitivity, new.covid_specificity = 0.97, 0.9
    store.record(new)
    assert store.ranked("old")[0].trial_number == 2
    again = _upgrade(url)
    assert again.returncode == 0 and f"already at results schema version {SCHEMA_VERSION}" in again.stdout


def test_a_database_without_results_tables_is_not_upgraded(tmp_path: Path) -> None:
    done = _upgrade(f"sqlite:///{tmp_path / 'empty.db'}")
    assert done.returncode == 1
    assert "must hold cxr-search results tables to upgrade, but it has none" in done.stderr


@pytest.mark.postgres
def test_the_upgrade_widens_the_split_column_on_postgres_for_external_rows(postgres: str) -> None:
    """Version 4 kept `split` to 8 characters, which PostgreSQL enforces: `external:NAME` must fit after the upgrade."""
    from sqlalchemy.exc import DataError

    from search.store import upgrade_schema

    store = ResultStore(postgres)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM cxr_trials WHERE study_name = 'widen'"))
        conn.execute(text("ALTER TABLE cxr_trials ALTER COLUMN split TYPE VARCHAR(8)"))
        conn.execute(text("ALTER TABLE cxr_trials DROP COLUMN external_json"))
        conn.execute(text("UPDATE cxr_schema SET value = '4' WHERE key = 'version'"))
    store.dispose()
    with ResultStore(postgres).engine.begin() as conn, pytest.raises(DataError, match="too long"):
        conn.execute(
            text(
                "INSERT INTO cxr_trials (study_name, engine, trial_number, state, split, backbone, scheme, "
                "freeze_depth, head_width, dropout, learning_rate, augment_strength, image_size, batch_size, "
                "max_epochs, weights, config_json, epochs_run, wall_time_s, dataset_fingerprint, "
                "split_fingerprint) VALUES ('widen', 'optuna', 0, 'COMPLETE', 'external:hospital-b', 'x', "
                "'three', 1, 8, 0, 0.001, 0, 32, 8, 1, 'none', '{}', 1, 0, '', '')"
            )
        )
    store = ResultStore(postgres)
    assert upgrade_schema(store.engine) == (4, SCHEMA_VERSION)
    store.check_schema()
    row = config_row("widen", 0, CONFIG, "COMPLETE")
    row.split, row.external_json = "external:hospital-b", "{}"
    store.record(row)
    assert [r.split for r in store.trials("widen", split="external:hospital-b")] == ["external:hospital-b"]
    store.dispose()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("search.evaluate", "--study", "cxr-search"), id="evaluate"),
        pytest.param(("search.export", "--study", "cxr-search", "--out", "winner"), id="export"),
    ],
)
def test_evaluating_or_exporting_a_study_in_an_older_database_names_the_upgrade(
    command: tuple[str, ...], searched: Path, tmp_path: Path
) -> None:
    shutil.copy(searched / "optuna.db", tmp_path / "optuna.db")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    store = ResultStore(url)
    with store.engine.begin() as conn:  # version 6 had no input regions
        conn.execute(text("DROP INDEX IF EXISTS ix_cxr_trials_rank_op"))
        conn.execute(text("ALTER TABLE cxr_trials DROP COLUMN input_region"))
        conn.execute(text("UPDATE cxr_schema SET value = '6' WHERE key = 'version'"))
    store.dispose()
    done = run_module(*command, "--storage", url, cwd=tmp_path)
    assert done.returncode != 0
    assert f"must be version {SCHEMA_VERSION}, but " in done.stderr
    assert "has version 6; upgrade it in place with: python -m search.store upgrade" in done.stderr
    assert "OperationalError" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "winner").exists()
