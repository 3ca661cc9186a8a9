"""The artifact location: a local (shared) folder or ``s3://bucket``."""

from __future__ import annotations

from pathlib import Path

import optuna

from search._errors import SearchError
from search._settings import Settings, settings

__all__ = ["ArtifactStore", "artifact_location", "artifact_root", "artifact_store", "is_s3"]

ArtifactStore = optuna.artifacts.FileSystemArtifactStore | optuna.artifacts.Boto3ArtifactStore

# Set by whoever deploys the leaderboard or runs export: every study's artifacts must lie in it.
ROOT_VARIABLE = Settings.variable("artifacts_root")


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def artifact_location(given: str) -> str:
    """The location as stored in a study: ``s3://bucket`` unchanged, a folder made absolute."""
    if not is_s3(given):
        return str(Path(given).resolve())
    bucket, _, prefix = given.removeprefix("s3://").partition("/")
    if not bucket or prefix.strip("/"):
        raise SearchError(
            f"`--artifacts` must be a folder or s3://BUCKET (Optuna's S3 store writes at the bucket's top level, "
            f"so no key prefix), but got {given!r}."
        )
    return f"s3://{bucket}"


def artifact_root(location: str) -> str:
    """The study's artifact location, checked against ``$CXR_ARTIFACTS_ROOT`` when that is set.

    The location is a study attribute, so it comes from the database: a deployment that sets
    the root only ever reads inside it, whatever the database says.
    """
    configured = settings().artifacts_root
    if not configured:
        return location
    if is_s3(location) or is_s3(configured):
        if location.rstrip("/") != configured.rstrip("/"):
            raise SearchError(
                f"A study's artifacts must lie in ${ROOT_VARIABLE} ({configured}), but the study names {location!r}."
            )
        return location
    root, folder = Path(configured).resolve(), Path(location).resolve()
    if not folder.is_relative_to(root):
        raise SearchError(
            f"A study's artifacts must lie in ${ROOT_VARIABLE} ({root}), but the study names {location!r}."
        )
    return str(folder)


def artifact_store(location: str) -> ArtifactStore:
    """Optuna's artifact store for a shared folder, or ``s3://bucket`` (S3-compatible, via boto3;
    set AWS_ENDPOINT_URL for MinIO and friends)."""
    if is_s3(location):
        try:
            import boto3
        except ImportError:
            raise SearchError(
                f"An s3:// artifact location needs boto3 (pip install 'cxr-search[s3]'), but it is not installed "
                f"for {location!r}."
            ) from None
        bucket = artifact_location(location).removeprefix("s3://")
        return optuna.artifacts.Boto3ArtifactStore(bucket, client=boto3.client("s3"))
    return optuna.artifacts.FileSystemArtifactStore(location)
