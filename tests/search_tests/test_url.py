"""Storage URLs: passwords never shown, bad URLs one sentence, the same rule for every command."""

from __future__ import annotations

import argparse

import pytest

from search import SearchError
from search.store import DEFAULT_STORAGE, add_storage_argument, mask_url, parse_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://alice:s3cret@db/cxr", "postgresql+psycopg://alice:***@db/cxr"),
        ("postgresql+psycopg//alice:s3cret@db/cxr", "postgresql+psycopg//alice:***@db/cxr"),  # typo: unparseable
        ("postgresql+psycopg://alice:s3cret@db:54x2/cxr", "postgresql+psycopg://alice:***@db:54x2/cxr"),  # bad port
        ("postgresql+psycopg://alice@db/cxr?password=s3cret&sslmode=require", None),
        ("postgresql+psycopg://alice@db/cxr?sslpassword=s3cret", None),
        ("nonsense password=s3cret", "nonsense password=***"),
    ],
)
def test_passwords_are_masked_in_every_shape(url: str, shown: str | None) -> None:
    masked = mask_url(url)
    assert "s3cret" not in masked
    if shown is not None:
        assert masked == shown


def test_a_sqlite_url_is_shown_as_is() -> None:
    assert mask_url(DEFAULT_STORAGE) == DEFAULT_STORAGE


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg//alice:s3cret@db/cxr", "postgresql+psycopg://alice:s3cret@db:54x2/cxr", "optuna.db"]
)
def test_a_bad_url_gets_one_sentence_without_its_password(url: str) -> None:
    with pytest.raises(SearchError, match=r"^`--storage` must be a database URL such as sqlite:///optuna.db") as caught:
        parse_url(url)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("environment", "argv", "expected"),
    [
        (None, [], DEFAULT_STORAGE),
        ("postgresql+psycopg://alice:s3cret@db/cxr", [], "postgresql+psycopg://alice:s3cret@db/cxr"),
        ("postgresql+psycopg://alice:s3cret@db/cxr", ["--storage", "sqlite:///x.db"], "sqlite:///x.db"),
    ],
)
def test_every_command_reads_the_storage_the_same_way(
    monkeypatch: pytest.MonkeyPatch, environment: str | None, argv: list[str], expected: str
) -> None:
    if environment is None:
        monkeypatch.delenv("CXR_STORAGE", raising=False)
    else:
        monkeypatch.setenv("CXR_STORAGE", environment)
    parser = argparse.ArgumentParser()
    add_storage_argument(parser)
    assert parser.parse_args(argv).storage == expected


@pytest.mark.parametrize(
    "module", ["search.launch", "search.worker", "search.export", "search.evaluate", "search.store", "leaderboard"]
)
def test_every_cli_names_the_environment_variable(module: str) -> None:
    from tests.conftest import run_module

    done = run_module(module, *(["upgrade"] if module == "search.store" else []), "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "$CXR_STORAGE" in done.stdout
