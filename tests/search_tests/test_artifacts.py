"""Artifacts: names and locations from the database never reach outside the artifact root; S3 works."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from search import SearchError
from search._records import download_models
from search.artifacts import artifact_location, artifact_root, bare_name, download_to, read_artifact
from search.launch import parse_args, prepare
from search.store import ResultStore
from tests.conftest import BASE, free_port, launch


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../escaped.keras", "/etc/passwd", "models/x.keras", "..\\x.keras", "a\nb.png"]
)
def test_only_bare_names_are_accepted(name: str) -> None:
    with pytest.raises(SearchError, match=r"must be a bare file name, but got"):
        bare_name(name)


def test_a_plain_name_passes() -> None:
    assert bare_name("trial-3.keras") == "trial-3.keras"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "ok-id").write_bytes(b"\x89PNG overlay")
    (tmp_path / "secret.txt").write_text("not an artifact")
    return folder


def test_a_stored_artifact_is_read(root: Path) -> None:
    assert read_artifact(str(root), "ok-id") == b"\x89PNG overlay"


@pytest.mark.parametrize(
    ("artifact_id", "message"),
    [
        ("../secret.txt", "must be a bare file name"),
        ("/etc/passwd", "must be a bare file name"),
        ("link-out", "must lie inside the artifact folder"),
        ("zero", "must lie inside the artifact folder"),
        ("fifo", "must be a regular file"),
        ("missing", "must exist in"),
    ],
)
def test_ids_from_the_database_cannot_leave_the_root_or_block(root: Path, artifact_id: str, message: str) -> None:
    (root / "link-out").symlink_to(root.parent / "secret.txt")
    (root / "zero").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo")
    # A thread, so a read that blocks on the FIFO fails the test instead of hanging it.
    caught: list[BaseException] = []
    reader = threading.Thread(target=lambda: _capture(caught, lambda: read_artifact(str(root), artifact_id)))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), f"reading {artifact_id!r} blocked"
    assert len(caught) == 1 and isinstance(caught[0], SearchError) and message in str(caught[0])


def _capture(caught: list[BaseException], call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        caught.append(exc)


def test_an_artifact_over_the_cap_is_refused(root: Path) -> None:
    (root / "big").write_bytes(b"x" * 2048)
    with pytest.raises(SearchError, match=r"must be at most 1024 bytes, but 'big' has 2048"):
        read_artifact(str(root), "big", max_bytes=1024)


def test_a_model_file_name_from_the_database_stays_in_the_download_folder(root: Path, tmp_path: Path) -> None:
    row = SimpleNamespace(
        trial_number=3, artifacts=[SimpleNamespace(kind="model", artifact_id="ok-id", filename="../escaped.keras")]
    )
    info = SimpleNamespace(artifacts=str(root))
    target = tmp_path / "download"
    target.mkdir()
    with pytest.raises(SearchError, match=r"An artifact name must be a bare file name, but got '../escaped.keras'"):
        download_models(row, info, target)  # type: ignore[arg-type]
    assert not (tmp_path / "escaped.keras").exists()


def test_a_configured_root_refuses_a_study_folder_outside_it(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXR_ARTIFACTS_ROOT", str(root))
    assert artifact_root(str(root)) == str(root.resolve())
    with pytest.raises(SearchError, match=r"must lie in \$CXR_ARTIFACTS_ROOT .* but the study names '/etc'"):
        artifact_root("/etc")
    with pytest.raises(SearchError, match="must lie in"):
        download_to("/etc", "passwd", tmp_path, "passwd")


@pytest.mark.parametrize(
    ("given", "expected"), [("s3://bucket", "s3://bucket"), ("s3://bucket/", "s3://bucket"), ("rel", None)]
)
def test_artifact_locations(given: str, expected: str | None) -> None:
    assert artifact_location(given) == (expected or str(Path(given).resolve()))


@pytest.mark.parametrize("given", ["s3://", "s3://bucket/prefix"])
def test_s3_locations_are_a_bare_bucket(given: str) -> None:
    with pytest.raises(SearchError, match=r"`--artifacts` must be a folder or s3://BUCKET"):
        artifact_location(given)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-compatible HTTP server (moto's) with an empty bucket; boto3 finds it by environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3").create_bucket(Bucket="cxr-artifacts")
    yield "s3://cxr-artifacts"
    server.stop()


def test_s3_artifacts_round_trip_through_a_real_server(s3: str, tmp_path: Path) -> None:
    from search.artifacts import artifact_store

    source = tmp_path / "model.keras"
    source.write_bytes(b"model bytes")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}")
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=artifact_store(s3), file_path=str(source), study_or_trial=study
    )
    assert read_artifact(s3, artifact_id) == b"model bytes"
    assert download_to(s3, artifact_id, tmp_path, "copy.keras").read_bytes() == b"model bytes"
    with pytest.raises(SearchError, match=r"must be readable from s3://cxr-artifacts, but 'no-such-id' is not"):
        read_artifact(s3, "no-such-id")


def test_launch_keeps_an_s3_location_instead_of_making_a_local_folder(s3: str, tiny: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = parse_args(["--trials", "1", "--data", str(tiny), "--storage", storage, "--artifacts", s3, *BASE])
    prepare(args)
    attrs = optuna.load_study(study_name="cxr-search", storage=storage).user_attrs
    assert attrs["cxr_artifacts"] == s3
    assert not any(p.name.startswith("s3") for p in Path.cwd().iterdir())


@pytest.mark.slow
def test_a_search_stores_its_models_and_overlays_in_s3(s3: str, tiny: Path, tmp_path: Path) -> None:
    done = launch("--trials", "1", "--data", str(tiny), "--artifacts", s3, *BASE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = ResultStore(f"sqlite:///{tmp_path / 'optuna.db'}").trials("cxr-search")
    assert {a.kind for a in row.artifacts} >= {"model"}
    info = SimpleNamespace(artifacts=s3)
    (model,) = download_models(row, info, tmp_path)  # type: ignore[arg-type]
    assert model.stat().st_size > 10_000 and not (tmp_path / "s3:").exists()
