"""``--lung-model auto|none|PATH``: where a study's lung masks come from, and segmenter files refused."""

from __future__ import annotations

from pathlib import Path

import keras
import optuna
import pytest

from cxrdata.lungs import packaged_segmenter
from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from search.launch import main, parse_args, prepare
from tests.conftest import BASE
from tests.search_tests.test_imports import _loaded


@pytest.fixture(scope="module")
def unmasked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-class dataset without a single lung mask, as the shared radiography sample."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("unmasked"), SyntheticSpec(per_class=6, size=32, masks=False, seed=2)
    )


def _prepared(tmp_path: Path, data: Path, *flags: str) -> str | None:
    """The study's stored segmenter after ``prepare`` (what workers and evaluate load)."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    prepare(parse_args(["--trials", "1", "--storage", url, "--data", str(data), *BASE, *flags]))
    stored = optuna.load_study(study_name="cxr-search", storage=url).user_attrs["cxr_lung_model"]
    assert stored is None or isinstance(stored, str)
    return stored


@pytest.mark.parametrize(
    ("flags", "stored", "line"),
    [
        ([], "packaged", "lung masks: 0 from the dataset, 18 from the packaged segmenter (held-out Dice 0.948)"),
        (["--lung-model", "auto"], "packaged", "lung masks: 0 from the dataset, 18 from the packaged segmenter"),
        (
            ["--lung-model", "none"],
            None,
            "lung masks: 0 from the dataset, none for the other 18 (--lung-model none): lung focus is not measured.",
        ),
    ],
    ids=["default", "auto", "none"],
)
def test_data_without_masks_gets_the_packaged_segmenter_unless_told_none(
    unmasked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], stored: str | None, line: str
) -> None:
    expected = str(packaged_segmenter()) if stored == "packaged" else None
    assert _prepared(tmp_path, unmasked, *flags) == expected
    assert expected is None or Path(expected).is_absolute()
    assert line in capsys.readouterr().err


def test_data_with_masks_needs_no_segmenter(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _prepared(tmp_path, tiny) is None
    assert "lung masks: all 48 from the dataset" in capsys.readouterr().err


@pytest.mark.slow  # the file is loaded in a child process
def test_a_segmenter_file_is_checked_and_stored_by_its_absolute_path(
    unmasked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(packaged_segmenter().parents[2])  # a relative path, as a user types it
    relative = "cxrdata/segmenter/lungs.keras"
    assert _prepared(tmp_path, unmasked, "--lung-model", relative) == str(packaged_segmenter())
    err = capsys.readouterr().err
    assert f"lung masks: 0 from the dataset, 18 from the segmenter '{relative}' (held-out Dice 0.948)" in err


def test_auto_prepares_a_study_without_tensorflow(unmasked: Path, tmp_path: Path) -> None:
    """The packaged file needs no check in launch's process, which never loads TensorFlow."""
    flags = ["--trials", "1", "--data", str(unmasked), "--storage", f"sqlite:///{tmp_path / 'o.db'}", *BASE]
    assert _loaded(f"from search.launch import parse_args, prepare\nprepare(parse_args({flags!r}))") == "loaded:"


def _classifier(path: Path) -> None:
    inputs = keras.Input((224, 224, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, strides=8)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled)).save(path)


def _two_channel_output(path: Path) -> None:
    inputs = keras.Input((64, 64, 1))
    keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax")(inputs)).save(path)


RULE = "`--lung-model` must be a lung segmenter with input (S, S, 1) and output (S, S, 1)"


# A file that is a Keras archive is loaded in a child process (launch's own never loads
# TensorFlow): those rows start one, so they are slow.
@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda p: p.write_bytes(b"PK\x03\x04 not really"),
            RULE + " saved by Keras, but '{path}' is not a Keras model file.",
            id="not-keras",
        ),
        pytest.param(
            _classifier,
            RULE + ", but '{path}' takes (224, 224, 3) and gives (3,).",
            id="classifier",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            _two_channel_output,
            RULE + ", but '{path}' takes (64, 64, 1) and gives (64, 64, 2).",
            id="two-channel-output",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_bad_segmenter_file_stops_the_launch_before_anything_is_written(
    unmasked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    path = tmp_path / "given" / "x.keras"
    path.parent.mkdir()
    make(path)  # type: ignore[operator]
    work = tmp_path / "work"
    work.mkdir()
    url = f"sqlite:///{work / 'optuna.db'}"
    assert main(["--trials", "1", "--storage", url, "--data", str(unmasked), *BASE, "--lung-model", str(path)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: " + message.format(path=path)
    assert list(work.iterdir()) == [], "no database, cache or artifact folder"
