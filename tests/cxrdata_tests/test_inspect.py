from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cxrdata.inspect import main
from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from tests.conftest import run_module


def test_report_on_the_shared_sample(radiography: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(radiography)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"COVID +COVID +600 +0 \(0%\)", out)
    assert "duplicates across splits: 0" in out
    assert "patients on more than one split: 0" in out
    assert "source 'kermany-pediatric' supplies only Viral Pneumonia images" in out


def test_unusable_scheme_exits_non_zero(radiography: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(radiography), "--scheme", "four"]) == 1
    assert "error: The 'four' scheme needs images in the class folder(s) 'Lung_Opacity'" in capsys.readouterr().err


def test_missing_root_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_bad_files_are_listed_but_the_dataset_is_usable(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, SyntheticSpec(per_class=10, size=32))
    (root / "COVID" / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "Scans").mkdir()
    # As a user runs it: a separate process, JSON out.
    done = run_module("cxrdata.inspect", str(root), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"] == {"COVID": 10, "Normal": 10, "Viral Pneumonia": 10}
    assert report["masks"] == 30
    assert [x["path"] for x in report["excluded"]] == ["COVID/images/broken.png"]
    assert report["unknown_folders"] == ["Scans"]
