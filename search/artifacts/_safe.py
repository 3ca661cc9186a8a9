"""Reading artifacts whose ids and names come from the database, without trusting them."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from search._errors import SearchError
from search.artifacts._location import artifact_root, artifact_store, is_s3

__all__ = ["IMAGE_MAX_BYTES", "MODEL_MAX_BYTES", "bare_name", "download_to", "read_artifact"]

# An overlay is a small PNG; a model is at most a few hundred MB (DenseNet121 is ~30 MB).
IMAGE_MAX_BYTES = 16 * 2**20
MODEL_MAX_BYTES = 4 * 2**30
_CHUNK = 2**20


def bare_name(name: str, what: str = "An artifact name") -> str:
    """``name`` when it is a plain file name: no folder, no parent, not absolute, printable."""
    plain = (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
        and not Path(name).is_absolute()
    )
    if not plain:
        raise SearchError(f"{what} must be a bare file name, but got {name!r}.")
    return name


def _local_file(root: str, artifact_id: str, max_bytes: int) -> Path:
    """The artifact's path: inside the root once links are resolved, a regular file, not too big."""
    base = Path(root).resolve()
    path = (base / bare_name(artifact_id, "An artifact id")).resolve()
    if not path.is_relative_to(base):
        raise SearchError(f"An artifact must lie inside the artifact folder {base}, but {artifact_id!r} leads out.")
    try:
        facts = path.stat()  # stat, not open: a FIFO or a device is refused before it can block
    except OSError as exc:
        raise SearchError(
            f"An artifact must exist in {base}, but {artifact_id!r} cannot be read ({exc.strerror})."
        ) from None
    if not stat.S_ISREG(facts.st_mode):
        raise SearchError(f"An artifact must be a regular file, but {artifact_id!r} in {base} is not.")
    if facts.st_size > max_bytes:
        raise SearchError(f"An artifact must be at most {max_bytes} bytes, but {artifact_id!r} has {facts.st_size}.")
    return path


def _copy_capped(reader: BinaryIO, writer: BinaryIO, artifact_id: str, max_bytes: int) -> None:
    copied = 0
    while chunk := reader.read(_CHUNK):
        copied += len(chunk)
        if copied > max_bytes:
            raise SearchError(f"An artifact must be at most {max_bytes} bytes, but {artifact_id!r} is larger.")
        writer.write(chunk)


def _s3_reader(root: str, artifact_id: str) -> BinaryIO:
    try:
        return artifact_store(root).open_reader(bare_name(artifact_id, "An artifact id"))
    except SearchError:
        raise
    except Exception as exc:  # boto3 raises ClientError, EndpointConnectionError, NoCredentialsError ...
        raise SearchError(f"An artifact must be readable from {root}, but {artifact_id!r} is not ({exc}).") from None


def download_to(location: str, artifact_id: str, folder: Path, filename: str, max_bytes: int = MODEL_MAX_BYTES) -> Path:
    """Copy one artifact to ``folder / filename``; the name must be bare, so the copy stays in ``folder``."""
    target = folder / bare_name(filename)
    root = artifact_root(location)
    if is_s3(root):
        with _s3_reader(root, artifact_id) as reader, target.open("wb") as out:
            _copy_capped(reader, out, artifact_id, max_bytes)
        return target
    shutil.copyfile(_local_file(root, artifact_id, max_bytes), target)
    return target


def read_artifact(location: str, artifact_id: str, max_bytes: int = IMAGE_MAX_BYTES) -> bytes:
    """One artifact's bytes (e.g. an overlay for a page), checked like :func:`download_to`."""
    root = artifact_root(location)
    if is_s3(root):
        with _s3_reader(root, artifact_id) as reader:
            body = reader.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise SearchError(f"An artifact must be at most {max_bytes} bytes, but {artifact_id!r} is larger.")
        return bytes(body)
    with _local_file(root, artifact_id, max_bytes).open("rb") as reader:
        return reader.read(max_bytes + 1)[:max_bytes]
