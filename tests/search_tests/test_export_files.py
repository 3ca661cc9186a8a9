"""The export folder is built beside its destination and renamed into place: never half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search import SearchError
from search.export._files import staged


class CrashError(Exception):
    pass


def _previous(out: Path) -> None:
    out.mkdir()
    (out / "model.keras").write_text("old model")
    (out / "stale.txt").write_text("from an older export")


def test_a_new_folder_appears_complete_and_nothing_else_is_left(tmp_path: Path) -> None:
    out = tmp_path / "winner"
    with staged(out, force=False) as folder:
        assert folder.parent == tmp_path and folder.name.startswith(".winner.tmp-")
        assert not out.exists(), "the destination appears only at the end"
        (folder / "model.keras").write_text("new model")
    assert [p.name for p in tmp_path.iterdir()] == ["winner"]
    assert (out / "model.keras").read_text() == "new model"


def test_the_published_folder_has_the_usual_permissions(tmp_path: Path) -> None:
    out = tmp_path / "winner"
    with staged(out, force=False):
        pass
    (tmp_path / "plain").mkdir()
    assert out.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777, "not mkdtemp's 0700"


def test_force_leaves_only_the_new_files(tmp_path: Path) -> None:
    out = tmp_path / "winner"
    _previous(out)
    with staged(out, force=True) as folder:
        (folder / "model.keras").write_text("new model")
    assert sorted(p.name for p in out.iterdir()) == ["model.keras"]
    assert (out / "model.keras").read_text() == "new model"
    assert [p.name for p in tmp_path.iterdir()] == ["winner"], "the previous export is deleted once replaced"


@pytest.mark.parametrize("force", [False, True])
def test_a_crash_leaves_the_destination_as_it_was(tmp_path: Path, force: bool) -> None:
    out = tmp_path / "winner"
    if force:
        _previous(out)
    with pytest.raises(CrashError), staged(out, force=force) as folder:
        (folder / "model.keras").write_text("half a new model")
        raise CrashError
    if force:
        assert (out / "model.keras").read_text() == "old model" and (out / "stale.txt").exists()
    else:
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["winner"] if force else [])


def test_a_failed_rename_puts_the_previous_export_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "winner"
    _previous(out)
    rename = Path.rename

    def failing(self: Path, target: str | os.PathLike[str]) -> Path:
        if self.name.startswith(".winner.tmp-"):
            raise OSError("disk full")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="disk full"), staged(out, force=True) as folder:
        (folder / "model.keras").write_text("new model")
    assert (out / "model.keras").read_text() == "old model"
    assert [p.name for p in tmp_path.iterdir()] == ["winner"]


def test_files_written_meanwhile_are_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "winner"
    with pytest.raises(SearchError, match=r"must be a new or empty folder"), staged(out, force=False) as folder:
        (folder / "model.keras").write_text("new model")
        _previous(out)  # another process wrote there while this export ran
    assert (out / "model.keras").read_text() == "old model"
    assert [p.name for p in tmp_path.iterdir()] == ["winner"]


def test_a_link_is_followed_to_its_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    _previous(real)
    (tmp_path / "link").symlink_to(real)
    with staged(tmp_path / "link", force=True) as folder:
        (folder / "model.keras").write_text("new model")
    assert (tmp_path / "link").is_symlink() and (real / "model.keras").read_text() == "new model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
