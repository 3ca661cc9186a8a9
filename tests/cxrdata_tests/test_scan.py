"""Dataset layouts and every kind of bad input: one clear sentence, or one listed exclusion."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdata import DatasetError, get_scheme, scan
from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset


def _png(path: Path, value: int = 90, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)


def _plain(root: Path, classes: tuple[str, ...] = ("COVID", "Normal"), per_class: int = 3) -> Path:
    for c, label in enumerate(classes):
        for i in range(per_class):
            _png(root / label / f"{i}.png", value=10 * c + i)
    return root


def test_plain_layout(tmp_path: Path) -> None:
    m = scan(_plain(tmp_path, ("covid", "NORMAL", "viral_pneumonia")))
    assert m.layout == "plain"
    assert m.counts() == {"COVID": 3, "Normal": 3, "Viral Pneumonia": 3}
    assert m.class_folders == {"COVID": "covid", "Normal": "NORMAL", "Viral Pneumonia": "viral_pneumonia"}
    assert all(e.mask is None for e in m.entries)


def test_kaggle_layout_with_masks_and_metadata(synthetic: Path) -> None:
    m = scan(synthetic)
    assert m.layout == "kaggle"
    assert m.counts() == {"COVID": 12, "Normal": 12, "Viral Pneumonia": 12}
    assert all(e.mask is not None and e.mask.replace("/masks/", "/images/") == e.path for e in m.entries)
    assert {e.source for e in m.entries} == {"synthetic"}
    assert len({e.patient_id for e in m.entries}) == 18


def test_kaggle_layout_without_masks(tmp_path: Path) -> None:
    for label in ("COVID", "Normal"):
        _png(tmp_path / label / "images" / f"{label}-1.png")
    m = scan(tmp_path)
    assert m.layout == "kaggle"
    assert [e.mask for e in m.entries] == [None, None]


def test_steps_into_the_folder_a_zip_unpacks_to(tmp_path: Path) -> None:
    _plain(tmp_path / "COVID-19_Radiography_Dataset")
    m = scan(tmp_path)
    assert m.root == tmp_path / "COVID-19_Radiography_Dataset"
    assert m.notes == ("Read the class folders inside 'COVID-19_Radiography_Dataset/'.",)


def test_unknown_folders_are_reported_not_guessed(tmp_path: Path) -> None:
    _plain(tmp_path)
    _png(tmp_path / "Pneumonia" / "x.png")
    m = scan(tmp_path)
    assert m.unknown_folders == ("Pneumonia",)
    assert "Viral Pneumonia" not in m.counts()


def test_fingerprint_changes_with_content_and_labels(tmp_path: Path) -> None:
    root = _plain(tmp_path / "a")
    before = scan(root).fingerprint
    assert scan(root).fingerprint == before
    _png(root / "COVID" / "0.png", value=99)
    assert scan(root).fingerprint != before


def test_metadata_csv_without_path_column_is_refused(tmp_path: Path) -> None:
    _plain(tmp_path)
    (tmp_path / "metadata.csv").write_text("file,patient\n0.png,1\n")
    with pytest.raises(
        DatasetError,
        match=r"The metadata CSV must have a 'path' column, but '.*metadata.csv' has the columns: 'file', 'patient'.",
    ):
        scan(tmp_path)


def test_metadata_label_disagreement_is_noted(tmp_path: Path) -> None:
    _plain(tmp_path)
    (tmp_path / "metadata.csv").write_text("path,label,patient_id\nCOVID/0.png,Normal,7\nCOVID/9.png,COVID,8\n")
    m = scan(tmp_path)
    assert next(e for e in m.entries if e.path == "COVID/0.png").patient_id == "7"
    assert "1 metadata row(s) give a label other than the class folder; the folder wins." in m.notes
    assert "1 metadata row(s) name files that were not found or not usable." in m.notes


# --- Bad roots: one sentence each -------------------------------------------------------


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nowhere"


def _file(tmp_path: Path) -> Path:
    _png(tmp_path / "x.png")
    return tmp_path / "x.png"


def _no_class_folders(tmp_path: Path) -> Path:
    _png(tmp_path / "covd" / "x.png")
    _png(tmp_path / "misc" / "x.png")
    return tmp_path


def _two_folders_one_class(tmp_path: Path) -> Path:
    _plain(tmp_path)
    _png(tmp_path / "covid-19" / "x.png")
    return tmp_path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, r"The dataset root must be an existing folder, but '.*nowhere' does not exist\."),
        (_file, r"The dataset root must be a folder holding one folder per class, but '.*x\.png' is a file\."),
        (
            _no_class_folders,
            r"The dataset root must hold class folders named 'COVID', 'Normal', 'Lung_Opacity', 'Viral Pneumonia' "
            r"\(case, spaces and underscores ignored\), but '.*' holds: 'covd', 'misc'\. Did you mean 'COVID'\?",
        ),
        (
            _two_folders_one_class,
            r"Each class must have one folder, but 'COVID' and 'covid-19' both name the class 'COVID'\.",
        ),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_bad_roots(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        scan(make(tmp_path))


def test_empty_class_folder_fails_the_scheme_that_needs_it(tmp_path: Path) -> None:
    _plain(tmp_path, ("COVID", "Normal"))
    (tmp_path / "Viral Pneumonia").mkdir()
    m = scan(tmp_path)
    with pytest.raises(DatasetError) as info:
        m.labels(get_scheme("three"))
    assert str(info.value) == (
        "The 'three' scheme needs images in the class folder(s) 'Viral Pneumonia', but the folders found are: "
        "'COVID', 'Normal', 'Viral Pneumonia'."
    )
    m.labels(get_scheme("binary"))  # the other classes still work


# --- Bad files: listed with the reason, excluded, never fatal ---------------------------


def _bad(name: str | bytes, write: Callable[[Path], None]) -> Callable[[Path], str]:
    def make(covid: Path) -> str:
        target = Path(os.fsdecode(os.fsencode(covid) + b"/" + os.fsencode(name)))
        write(target)
        return os.fsdecode(name)

    return make


def _write_text(p: Path) -> None:
    p.write_text("hello")


def _write_empty(p: Path) -> None:
    p.write_bytes(b"")


def _write_truncated(p: Path) -> None:
    _png(p, size=64)
    p.write_bytes(p.read_bytes()[:300])


def _write_bomb(p: Path) -> None:
    Image.new("1", (9000, 9000)).save(p)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_bad("notes.txt", _write_text), "not a PNG or JPEG file name (suffix '.txt')"),
        (_bad("README", _write_text), "not a PNG or JPEG file name (suffix 'none')"),
        (_bad("fake.png", _write_text), "not a PNG or JPEG image (the content cannot be identified)"),
        (_bad("empty.png", _write_empty), "empty file (0 bytes)"),
        (_bad("cut.png", _write_truncated), "corrupt or truncated image data"),
        (_bad("bomb.png", _write_bomb), "image of 9000x9000 pixels exceeds the limit"),
        (_bad(b"caf\xe9.png", _png), "file name is not valid UTF-8 (rename the file to include it)"),
    ],
    ids=["text-file", "no-suffix", "text-named-png", "empty", "truncated", "bomb", "non-utf8-name"],
)
def test_bad_files_are_excluded_with_the_reason(tmp_path: Path, make: Callable[[Path], str], reason: str) -> None:
    root = _plain(tmp_path)
    name = make(root / "COVID")
    m = scan(root)
    assert m.counts() == {"COVID": 3, "Normal": 3}, "good files must all survive"
    assert len(m.excluded) == 1
    assert m.excluded[0].reason.startswith(reason)
    assert m.excluded[0].path.startswith("COVID/")
    if name.isascii():
        assert m.excluded[0].path == f"COVID/{name}"
    m.excluded[0].path.encode("utf-8")  # printable even when the name was not UTF-8


def test_bad_mask_keeps_the_image(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, SyntheticSpec(per_class=3, size=32))
    (root / "COVID" / "masks" / "COVID-1.png").write_text("broken")
    Image.new("L", (32, 32)).save(root / "COVID" / "masks" / "COVID-2.png")
    m = scan(root)
    assert m.counts()["COVID"] == 3
    by_path = {e.path: e for e in m.entries}
    assert by_path["COVID/images/COVID-1.png"].mask is None
    assert by_path["COVID/images/COVID-2.png"].mask is None
    assert by_path["COVID/images/COVID-3.png"].mask is not None
    reasons = {x.path: x.reason for x in m.excluded}
    assert reasons["COVID/masks/COVID-1.png"].startswith("mask not a PNG or JPEG image")
    assert reasons["COVID/masks/COVID-2.png"] == "mask is empty (no lung pixel)"


def test_a_scan_never_touches_the_files(tmp_path: Path) -> None:
    root = _plain(tmp_path / "data")
    (root / "COVID" / "junk.txt").write_text("x")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    scan(root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    shutil.rmtree(root)
