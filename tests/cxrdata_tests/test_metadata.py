"""metadata.csv: a malformed file is refused with one sentence naming the line; values are printable."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdata import DatasetError, scan
from cxrdata.inspect import main

LIMIT = csv.field_size_limit()


def _dataset(root: Path, metadata: str | bytes) -> Path:
    for c, label in enumerate(("COVID", "Normal")):
        for i in range(2):
            path = root / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(10 * c + i)
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)
    target = root / "metadata.csv"
    if isinstance(metadata, bytes):
        target.write_bytes(metadata)
    else:
        target.write_text(metadata, newline="")
    return root


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            "path,label,patient_id\nCOVID/0.png,COVID,7\nCOVID/1.png,COVID,8,extra\n",
            r"Each row of the metadata CSV must have at most 3 fields \(one per column\), "
            r"but line 3 of '.*metadata\.csv' has 4\.",
        ),
        (
            "path,source\nCOVID/0.png," + "x" * (LIMIT + 1) + "\n",
            rf"Every field of the metadata CSV must be at most {LIMIT} characters long, "
            r"but line 2 of '.*metadata\.csv' holds a longer one\.",
        ),
        (
            'path,source\nCOVID/0.png,"never closed\nCOVID/1.png,b\n' + "y" * LIMIT,
            rf"Every field of the metadata CSV must be at most {LIMIT} characters long, "
            r"but line 4 of '.*metadata\.csv' holds a longer one\.",
        ),
        (
            'path,source\nCOVID/0.png,"never closed\nCOVID/1.png,b\n',
            r"The metadata CSV must be valid CSV, but line 3 of '.*metadata\.csv' is not \(unexpected end of data\)\.",
        ),
        (
            'path,source\nCOVID/0.png,"St. Mary\'s" hospital\n',
            r"The metadata CSV must be valid CSV, but line 2 of '.*metadata\.csv' is not \(',' expected after '\"'\)\.",
        ),
        (
            "path,patient_id\nCOVID/0.png,1\nNormal/0.png,2\nCOVID/0.png,3\n",
            r"Each image must have one row in the metadata CSV, but 'COVID/0\.png' is on lines 2 and 4 of "
            r"'.*metadata\.csv'\.",
        ),
        (
            'path,source\nCOVID/0.png,"two\nlines"\n\n.\\COVID\\0.png,b\n',
            r"Each image must have one row in the metadata CSV, but 'COVID/0\.png' is on lines 2 and 5 of "
            r"'.*metadata\.csv'\.",
        ),
        (
            "path,source\nCOVID/\x1b[2J0.png,a\nCOVID/\x1b[2J0.png,b\n",
            r"Each image must have one row in the metadata CSV, but 'COVID/\ufffd\[2J0\.png' is on lines 2 and 3",
        ),
        (
            "file,patient\n0.png,1\n",
            r"The metadata CSV must have a 'path' column, but '.*metadata\.csv' has the columns: 'file', 'patient'\.",
        ),
        ("", r"The metadata CSV must have a 'path' column, but '.*metadata\.csv' has the columns: none\."),
        (
            b"path,source\nCOVID/0.png,caf\xe9\n",
            r"The metadata CSV must be UTF-8 text, but '.*metadata\.csv' is not \(invalid continuation byte\)\.",
        ),
    ],
    ids=[
        "extra-field",
        "field-over-limit",
        "unclosed-quote-long",
        "unclosed-quote",
        "text-after-closing-quote",
        "path-twice",
        "path-twice-spelled-differently",
        "path-twice-with-control-characters",
        "no-path-column",
        "empty-file",
        "not-utf8",
    ],
)
def test_malformed_metadata_is_refused_naming_the_line(tmp_path: Path, metadata: str | bytes, message: str) -> None:
    root = _dataset(tmp_path, metadata)
    with pytest.raises(DatasetError, match=message) as info:
        scan(root)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_the_dataset_report_exits_with_the_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _dataset(tmp_path, "path,label\nCOVID/0.png,COVID,oops\n")
    assert main([str(root)]) == 1
    assert "but line 2 of" in capsys.readouterr().err


def test_metadata_over_the_size_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cxrdata._layout

    monkeypatch.setattr(cxrdata._layout, "MAX_FILE_BYTES", 1024)
    root = _dataset(tmp_path, "path,source\n" + "COVID/0.png,a\n" * 200)
    with pytest.raises(
        DatasetError, match=r"The metadata CSV must be at most 1 KiB, but '.*metadata\.csv' is 2\.7 KiB\."
    ):
        scan(root)


def test_a_metadata_path_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    root = _dataset(tmp_path, "path\n")
    with pytest.raises(DatasetError, match=r"The metadata CSV must be a regular file, but '.*COVID' is not\."):
        scan(root, metadata=root / "COVID")


@pytest.mark.parametrize(
    ("row", "patient_id", "source"),
    [
        ("COVID/0.png,  7 , kaggle ", "7", "kaggle"),
        ("COVID/0.png,7,evil\x1b[31mred", "7", "evil\ufffd[31mred"),
        ('COVID/0.png,"1\r\n2",a\x07b', "1\ufffd\ufffd2", "a\ufffdb"),
        ("COVID/0.png,\u202e7,\x00src", "\ufffd7", "\ufffdsrc"),
        ("COVID/0.png,p\u2028q,caf\u00e9 \u00a0x", "p\ufffdq", "caf\u00e9 \u00a0x"),
    ],
    ids=["spaces", "escape-sequence", "newline-and-bell", "bidi-override-and-nul", "line-separator-kept-text"],
)
def test_control_characters_never_reach_the_terminal(tmp_path: Path, row: str, patient_id: str, source: str) -> None:
    root = _dataset(tmp_path, f"path,patient_id,source\n{row}\n")
    entry = next(e for e in scan(root).entries if e.path == "COVID/0.png")
    assert (entry.patient_id, entry.source) == (patient_id, source)


def test_short_and_blank_rows_are_read(tmp_path: Path) -> None:
    # Spreadsheets drop trailing empty cells and write rows of commas: neither is an error.
    root = _dataset(tmp_path, "path,patient_id,source\nCOVID/0.png,7\n,,\n,,\nNormal/1.png,9,x\n")
    m = scan(root)
    by_path = {e.path: e for e in m.entries}
    assert (by_path["COVID/0.png"].patient_id, by_path["COVID/0.png"].source) == ("7", None)
    assert (by_path["Normal/1.png"].patient_id, by_path["Normal/1.png"].source) == ("9", "x")
    assert m.notes == ()
