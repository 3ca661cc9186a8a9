"""Where a study's files live (a shared folder or an S3 bucket), and reading them back safely.

Artifact ids, file names and the artifact location all come from the database, which a
worker, a reviewer or an attacker with write access may have filled: nothing read from it
may choose a path outside the artifact root, a special file, or an unbounded read.
"""

from search.artifacts._location import ArtifactStore, artifact_location, artifact_root, artifact_store, is_s3
from search.artifacts._safe import IMAGE_MAX_BYTES, MODEL_MAX_BYTES, bare_name, download_to, read_artifact

__all__ = [
    "IMAGE_MAX_BYTES",
    "MODEL_MAX_BYTES",
    "ArtifactStore",
    "artifact_location",
    "artifact_root",
    "artifact_store",
    "bare_name",
    "download_to",
    "is_s3",
    "read_artifact",
]
