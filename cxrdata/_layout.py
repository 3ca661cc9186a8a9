"""Find class folders, image files, masks and metadata under a dataset root.

Two layouts are read: the Kaggle COVID-19 Radiography Database (``CLASS/images/*.png`` with
optional ``CLASS/masks/*.png`` of the same name) and the plain ``CLASS/*.png`` layout. An
optional ``metadata.csv`` (path, label, patient_id, source) adds patient ids and sources.

Symlinks are followed only while they stay inside the dataset root: one that leads out is
set aside with its target, so a scan reads nothing the user did not put in the dataset.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cxrdata._classes import CLASSES, canonical_class, did_you_mean
from cxrdata._decode import IMAGE_SUFFIXES, MAX_FILE_BYTES, format_size
from cxrdata._errors import DatasetError

__all__ = ["Candidate", "Layout", "find_layout", "printable", "read_metadata"]

METADATA_NAME = "metadata.csv"

# Unicode categories that move the cursor, recolour or reorder a terminal's text when printed:
# controls (ESC, CR), format characters (bidi overrides) and line/paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str) -> str:
    """A file name as it can be printed, even when it is not valid UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _clean(text: str) -> str:
    """A metadata value stripped of spaces, with every control character replaced by U+FFFD."""
    text = text.strip()
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join("\ufffd" if unicodedata.category(c) in _UNPRINTABLE else c for c in text)


@dataclass(frozen=True)
class Candidate:
    """A file found in a class folder, before it is decoded."""

    path: Path
    label: str
    mask: Path | None


@dataclass
class Layout:
    """What the folder walk found: candidate images and everything it set aside."""

    root: Path
    kind: str
    class_folders: dict[str, str]
    unknown_folders: list[str]
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DatasetError(f"The dataset root must be an existing folder, but '{root}' does not exist.")
    if not root.is_dir():
        raise DatasetError(f"The dataset root must be a folder holding one folder per class, but '{root}' is a file.")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _resolve_root(root: Path) -> tuple[Path, list[str]]:
    """Step into a lone wrapper folder (the Kaggle zip unpacks into one)."""
    subdirs = _subdirs(root)
    if not any(canonical_class(d.name) for d in subdirs) and len(subdirs) == 1:
        inner = subdirs[0]
        if any(canonical_class(d.name) for d in _subdirs(inner)):
            return inner, [f"Read the class folders inside '{inner.name}/'."]
    return root, []


def _class_folders(root: Path) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    unknown: list[str] = []
    for folder in _subdirs(root):
        label = canonical_class(folder.name)
        if label is None:
            unknown.append(folder.name)
        elif label in found:
            raise DatasetError(
                f"Each class must have one folder, but '{found[label].name}' and '{folder.name}' "
                f"both name the class {label!r}."
            )
        else:
            found[label] = folder
    if not found:
        names = ", ".join(repr(printable(u)) for u in unknown) or "none"
        hints = "".join(did_you_mean(u, CLASSES) for u in unknown[:3])
        raise DatasetError(
            f"The dataset root must hold class folders named {', '.join(repr(c) for c in CLASSES)} "
            f"(case, spaces and underscores ignored), but '{root}' holds: {names}.{hints}"
        )
    return found, unknown


def _leaves_root(path: Path, real_root: Path) -> str | None:
    """Why ``path`` may not be followed (a symlink out of the root, or a loop), else None."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop is a RuntimeError before Python 3.13
        return f"is a symlink that cannot be followed ({exc})"
    if target.is_relative_to(real_root):
        return None
    return f"is a symlink that leads outside the dataset root (-> {printable(str(target))})"


def _mask_for(path: Path, masks: Path | None, layout: Layout, real_root: Path) -> Path | None:
    mask = None if masks is None else masks / path.name
    # exists() rather than is_file(): a FIFO or device mask is then reported, not ignored.
    if mask is None or not mask.exists():
        return None
    if (why := _leaves_root(mask, real_root)) is not None:
        layout.rejected.append((mask, f"mask {why}"))
        return None
    return mask


def _files(folder: Path, layout: Layout, label: str, masks: Path | None, real_root: Path) -> None:
    if (why := _leaves_root(folder, real_root)) is not None:
        layout.rejected.append((folder, why))
        return
    if masks is not None and (why := _leaves_root(masks, real_root)) is not None:
        layout.rejected.append((masks, why))
        masks = None
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            if path.name not in ("images", "masks"):
                layout.notes.append(f"Ignored the sub-folder '{printable(str(path.relative_to(layout.root)))}'.")
            continue
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:
            layout.rejected.append((path, "file name is not valid UTF-8 (rename the file to include it)"))
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            layout.rejected.append((path, f"not a PNG or JPEG file name (suffix {path.suffix or 'none'!r})"))
            continue
        if (why := _leaves_root(path, real_root)) is not None:
            layout.rejected.append((path, why))
            continue
        layout.candidates.append(Candidate(path, label, _mask_for(path, masks, layout, real_root)))


def find_layout(root: str | Path) -> Layout:
    """Walk ``root`` and list every candidate image with its class and mask."""
    root = Path(root)
    _check_root(root)
    root, notes = _resolve_root(root)
    folders, unknown = _class_folders(root)
    kaggle = any((f / "images").is_dir() for f in folders.values())
    layout = Layout(
        root=root,
        kind="kaggle" if kaggle else "plain",
        class_folders={label: f.name for label, f in folders.items()},
        unknown_folders=unknown,
        notes=notes,
    )
    real_root = root.resolve()
    for label, folder in folders.items():
        if (why := _leaves_root(folder, real_root)) is not None:
            layout.rejected.append((folder, why))
            continue
        images = folder / "images"
        if images.is_dir():
            masks = folder / "masks"
            _files(images, layout, label, masks if masks.is_dir() else None, real_root)
        else:
            _files(folder, layout, label, None, real_root)
    return layout


def _records(handle: TextIO, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank CSV record with the line it starts on; bad CSV becomes a DatasetError."""
    # strict: an unclosed quote would otherwise swallow the rows after it without a word.
    reader = csv.reader(handle, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if str(exc).startswith("field larger than field limit"):
                raise DatasetError(
                    f"Every field of the metadata CSV must be at most {csv.field_size_limit()} characters long, "
                    f"but line {reader.line_num} of '{path}' holds a longer one."
                ) from None
            raise DatasetError(
                f"The metadata CSV must be valid CSV, but line {reader.line_num} of '{path}' is not ({exc})."
            ) from None
        if any(f.strip() for f in fields):
            yield start, fields


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(
            f"The metadata CSV must be at most {format_size(MAX_FILE_BYTES)}, but '{path}' is {format_size(size)}."
        )


def _parse_metadata(handle: TextIO, path: Path) -> dict[str, dict[str, str]]:
    records = _records(handle, path)
    header = next(records, None)
    columns = [] if header is None else [_clean(c) for c in header[1]]
    if "path" not in columns:
        raise DatasetError(
            f"The metadata CSV must have a 'path' column, but '{path}' has the columns: "
            f"{', '.join(repr(c) for c in columns) or 'none'}."
        )
    at = columns.index("path")
    rows: dict[str, dict[str, str]] = {}
    first_line: dict[str, int] = {}
    for line, fields in records:
        # A malformed metadata file is refused, not patched: an extra field means the columns
        # are shifted, and a guessed patient id would silently break the patient-wise split.
        if len(fields) > len(columns):
            raise DatasetError(
                f"Each row of the metadata CSV must have at most {len(columns)} fields (one per column), "
                f"but line {line} of '{path}' has {len(fields)}."
            )
        key = (fields[at] if at < len(fields) else "").strip().replace("\\", "/").removeprefix("./")
        if not key:
            continue  # names no image; missing trailing fields are empty values, as spreadsheets write them
        # Two rows for one image may disagree on the patient; either guess could leak a
        # patient across splits, so the user decides.
        if key in first_line:
            raise DatasetError(
                f"Each image must have one row in the metadata CSV, but '{_clean(key)}' is on lines "
                f"{first_line[key]} and {line} of '{path}'."
            )
        first_line[key] = line
        rows[key] = {c: _clean(f) for c, f in zip(columns, fields, strict=False)}
    return rows


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """Read a metadata CSV into ``{relative path: row}``; only the ``path`` column is required.

    Every value is stripped of spaces and control characters. Raises :class:`DatasetError`
    naming the line for a malformed row or an image listed twice.
    """
    _check_size(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse_metadata(handle, path)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"The metadata CSV must be UTF-8 text, but '{path}' is not ({exc.reason}).") from None
