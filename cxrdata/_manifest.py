"""The manifest: every usable image of a dataset with its label, mask, patient and hashes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from tqdm import tqdm

from cxrdata._classes import Scheme, canonical_class
from cxrdata._decode import MAX_FILE_BYTES, decode_mask, image_info, read_file
from cxrdata._errors import DatasetError, ImageDecodeError
from cxrdata._layout import METADATA_NAME, Candidate, find_layout, printable, read_metadata

__all__ = ["Entry", "Excluded", "ImageFacts", "Manifest", "scan"]

# Below this many files the progress bar is noise.
_PROGRESS_MIN_FILES = 500


@dataclass(frozen=True)
class ImageFacts:
    """What decoding a file tells: its hashes, size and original mode."""

    sha256: str
    phash: str
    dhash: str
    width: int
    height: int
    mode: str


@dataclass(frozen=True, kw_only=True)
class Entry(ImageFacts):
    """One usable image. Paths are POSIX and relative to the manifest's root."""

    path: str
    label: str
    mask: str | None
    patient_id: str | None
    source: str | None


@dataclass(frozen=True)
class Excluded:
    """A file left out of the manifest, and why."""

    path: str
    reason: str


@dataclass
class Manifest:
    """Everything :func:`scan` learnt about a dataset."""

    root: Path
    layout: str
    entries: tuple[Entry, ...]
    excluded: tuple[Excluded, ...]
    class_folders: dict[str, str]
    unknown_folders: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def fingerprint(self) -> str:
        """A hash of every image's path, label, content and patient: changes when the data does."""
        digest = hashlib.sha256()
        for e in sorted(self.entries, key=lambda e: e.path):
            digest.update(f"{e.path}\t{e.label}\t{e.sha256}\t{e.patient_id or ''}\t{e.mask or ''}\n".encode())
        return digest.hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        """Images per canonical class, in the order the classes were found."""
        return dict(Counter(e.label for e in self.entries))

    def check_scheme(self, scheme: Scheme) -> None:
        """Fail when the scheme needs a class this dataset has no images of."""
        scheme.check_available(list(self.counts()), [*self.class_folders.values(), *self.unknown_folders])

    def labels(self, scheme: Scheme) -> np.ndarray:
        """Scheme label per entry; -1 where the scheme leaves the class out."""
        self.check_scheme(scheme)
        return np.array([-1 if (i := scheme.label_of(e.label)) is None else i for e in self.entries], dtype=np.int64)

    def paths(self, indices: Sequence[int] | np.ndarray | None = None) -> list[Path]:
        """Absolute image paths, for all entries or the given indices."""
        chosen = self.entries if indices is None else [self.entries[int(i)] for i in indices]
        return [self.root / e.path for e in chosen]

    def mask_paths(self, indices: Sequence[int] | np.ndarray | None = None) -> list[Path | None]:
        chosen = self.entries if indices is None else [self.entries[int(i)] for i in indices]
        return [None if e.mask is None else self.root / e.mask for e in chosen]

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The manifest :meth:`to_json` wrote, without reading any image again."""
        data = json.loads(text)
        return cls(
            root=Path(data["root"]),
            layout=data["layout"],
            entries=tuple(Entry(**e) for e in data["entries"]),
            excluded=tuple(Excluded(**x) for x in data["excluded"]),
            class_folders=dict(data["class_folders"]),
            unknown_folders=tuple(data["unknown_folders"]),
            notes=tuple(data["notes"]),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "root": str(self.root),
                "layout": self.layout,
                "fingerprint": self.fingerprint,
                "entries": [asdict(e) for e in self.entries],
                "excluded": [asdict(x) for x in self.excluded],
                "class_folders": self.class_folders,
                "unknown_folders": list(self.unknown_folders),
                "notes": list(self.notes),
            }
        )


def _mask_problem(mask: Path, max_bytes: int) -> str | None:
    try:
        return None if decode_mask(mask, max_bytes=max_bytes).any() else "mask is empty (no lung pixel)"
    except (ImageDecodeError, OSError) as exc:
        return f"mask {exc}"


def _inspect(candidate: Candidate, max_bytes: int) -> tuple[ImageFacts | None, str | None, str | None]:
    """Decode one candidate: (its facts, image error, mask error).

    The file is read once, hashed while reading and decoded from memory, so the hash and the
    pixels come from the same bytes and a FIFO or device never reaches a decoder.
    """
    try:
        file = read_file(candidate.path, max_bytes=max_bytes)
        rgb, mode = image_info(file.data)
    except ImageDecodeError as exc:
        return None, str(exc), None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})", None
    gray = Image.fromarray(rgb).convert("L")
    mask_error = None if candidate.mask is None else _mask_problem(candidate.mask, max_bytes)
    facts = ImageFacts(
        sha256=file.sha256,
        phash=str(imagehash.phash(gray)),
        dhash=str(imagehash.dhash(gray)),
        width=rgb.shape[1],
        height=rgb.shape[0],
        mode=mode,
    )
    return facts, None, mask_error


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def scan(
    root: str | Path,
    *,
    metadata: str | Path | None = None,
    progress: bool = False,
    threads: int = 4,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> Manifest:
    """Read a dataset folder into a :class:`Manifest`.

    Every candidate image is decoded once here, so corrupt files are found before any
    training starts. Files that cannot be used are listed in ``Manifest.excluded`` with the
    reason; only a dataset with no usable class folder raises :class:`DatasetError`. Only
    regular files of at most ``max_file_bytes`` are read, images and masks alike.
    """
    layout = find_layout(root)
    meta_path = Path(metadata) if metadata is not None else layout.root / METADATA_NAME
    if metadata is not None and not meta_path.exists():
        raise DatasetError(f"The metadata CSV must be an existing file, but '{meta_path}' does not exist.")
    if metadata is not None and not meta_path.is_file():
        raise DatasetError(f"The metadata CSV must be a regular file, but '{meta_path}' is not.")
    rows = read_metadata(meta_path) if meta_path.is_file() else {}
    notes = list(layout.notes)
    excluded = [Excluded(printable(_relative(p, layout.root)), reason) for p, reason in layout.rejected]

    show = progress and len(layout.candidates) >= _PROGRESS_MIN_FILES
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(
            tqdm(
                pool.map(partial(_inspect, max_bytes=max_file_bytes), layout.candidates),
                total=len(layout.candidates),
                desc="Reading images",
                unit="img",
                disable=not show,
            )
        )

    entries: list[Entry] = []
    label_conflicts = 0
    for candidate, (decoded, error, mask_error) in zip(layout.candidates, results, strict=True):
        rel = _relative(candidate.path, layout.root)
        if decoded is None:
            excluded.append(Excluded(rel, error or "unreadable"))
            continue
        if mask_error is not None and candidate.mask is not None:
            excluded.append(Excluded(_relative(candidate.mask, layout.root), mask_error))
        row = rows.pop(rel, {})
        if row.get("label") and canonical_class(row["label"]) != candidate.label:
            label_conflicts += 1
        usable_mask = candidate.mask if mask_error is None else None
        entries.append(
            Entry(
                **asdict(decoded),
                path=rel,
                label=candidate.label,
                mask=None if usable_mask is None else _relative(usable_mask, layout.root),
                patient_id=row.get("patient_id") or None,
                source=row.get("source") or None,
            )
        )
    if label_conflicts:
        notes.append(f"{label_conflicts} metadata row(s) give a label other than the class folder; the folder wins.")
    if rows and meta_path.is_file():
        notes.append(f"{len(rows)} metadata row(s) name files that were not found or not usable.")
    return Manifest(
        root=layout.root,
        layout=layout.kind,
        entries=tuple(entries),
        excluded=tuple(excluded),
        class_folders=layout.class_folders,
        unknown_folders=tuple(layout.unknown_folders),
        notes=tuple(notes),
    )
