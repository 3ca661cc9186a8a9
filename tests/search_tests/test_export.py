"""Evaluate once on the test split, export, reload, predict: the round trip and its bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from cxrdata import decode_image, prepare_image, scan
from search import SearchError
from search._records import download_model, find_trial, study_info
from search.evaluate import main as evaluate_main
from search.export import KERAS_TOLERANCE, TFLITE_TOLERANCE, _tflite_predict, export, result_caveats
from search.predict import Predictor
from search.predict import main as predict_main
from search.store import ResultStore, TrialRow, meets_floor


@pytest.fixture(scope="module")
def study(searched: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private copy of the finished search (export writes test rows into it)."""
    folder = tmp_path_factory.mktemp("export-study")
    for name in ("optuna.db", "artifacts", ".cache"):
        source = searched / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    # Artifacts and cache are found through the study's stored absolute paths: point them here.
    import optuna

    url = f"sqlite:///{folder / 'optuna.db'}"
    loaded = optuna.load_study(study_name="cxr-search", storage=url)
    loaded.set_user_attr("cxr_artifacts", str(folder / "artifacts"))
    loaded.set_user_attr("cxr_cache_dir", str(folder / ".cache"))
    return url


@pytest.fixture(scope="module")
def exported(study: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "winner"
    export(study, "cxr-search", out)
    return out


def test_export_writes_every_format_and_a_card(exported: Path, study: str) -> None:
    assert {p.name for p in exported.iterdir()} >= {
        "model.keras",
        "saved_model",
        "model.tflite",
        "model_card.json",
        "MODEL_CARD.md",
    }
    card = json.loads((exported / "model_card.json").read_text())
    top = ResultStore(study).ranked("cxr-search", limit=1)[0]
    assert card["trial"] == top.trial_number, "the default is the top-ranked trial"
    assert card["classes"] == ["COVID", "Normal", "Viral Pneumonia"] and card["covid_class_index"] == 0
    assert card["scheme"] == "three" and card["input"]["size"] == 32
    assert card["config"]["backbone"] == "MobileNet_0.25"
    assert card["validation"]["covid_sensitivity"] == top.covid_sensitivity
    assert card["test"]["split"] == "test" and card["test"]["n"] > 0
    assert card["lung_focus"] == top.lung_focus
    unmeasured = any("Lung focus was not measured" in c for c in card["caveats"])
    assert unmeasured == (top.lung_focus is None), "the caveat appears exactly when focus is unknown"
    degenerate = any("so its sensitivity means little" in c for c in card["caveats"])
    assert degenerate == (not meets_floor(top.covid_specificity)), "flagged exactly below the specificity floor"
    assert len(card["dataset"]["fingerprint"]) == 16
    assert {"tensorflow-cpu", "keras", "numpy"} <= set(card["versions"]) or {"tensorflow", "keras"} <= set(
        card["versions"]
    )
    assert "Not a medical device" in card["warning"]
    assert card["parity"]["keras"] <= KERAS_TOLERANCE and card["parity"]["tflite"] <= TFLITE_TOLERANCE
    assert "Not a medical device" in (exported / "MODEL_CARD.md").read_text()


def test_the_test_split_is_measured_once_and_stored_apart(exported: Path, study: str) -> None:
    store = ResultStore(study)
    card = json.loads((exported / "model_card.json").read_text())
    test_rows = store.trials("cxr-search", split="test")
    assert [r.trial_number for r in test_rows] == [card["trial"]]
    assert test_rows[0].covid_sensitivity == card["test"]["covid_sensitivity"]
    assert all(r.split == "val" for r in store.ranked("cxr-search")), "test figures never rank"


def test_predict_round_trip_matches_the_in_memory_model(exported: Path, study: str, tiny: Path) -> None:
    paths = [tiny / e.path for e in scan(tiny).entries[:6]]
    lines = list(Predictor(exported).predict(paths))
    row = find_trial(ResultStore(study), "cxr-search", None)
    trained = keras.models.load_model(download_model(row, study_info(study, "cxr-search")))
    images = np.stack([prepare_image(decode_image(p), 32) for p in paths]).astype(np.float32)
    expected = trained.predict(images, verbose=0)
    got = np.array([[line["probabilities"][c] for c in ("COVID", "Normal", "Viral Pneumonia")] for line in lines])
    np.testing.assert_allclose(got, expected, atol=KERAS_TOLERANCE)
    for line, proba in zip(lines, expected, strict=True):
        assert line["prediction"] == ["COVID", "Normal", "Viral Pneumonia"][int(np.argmax(proba))]
        assert line["covid"] == (int(np.argmax(proba)) == 0)


def test_tflite_agrees_within_its_stated_tolerance(exported: Path, tiny: Path) -> None:
    paths = [tiny / e.path for e in scan(tiny).entries[:8]]
    images = np.stack([prepare_image(decode_image(p), 32) for p in paths]).astype(np.float32)
    keras_model = keras.models.load_model(exported / "model.keras", safe_mode=True)
    diff = np.abs(_tflite_predict(exported / "model.tflite", images) - keras_model.predict(images, verbose=0)).max()
    assert diff <= TFLITE_TOLERANCE


def test_predict_reports_bad_files_and_goes_on(
    exported: Path, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tiny / scan(tiny).entries[0].path
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert (
        predict_main(
            [
                "--model",
                str(exported),
                str(text),
                str(good),
                str(empty),
                str(tmp_path / "missing.png"),
                "--gradcam",
                str(tmp_path / "cams"),
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [("error" in line) for line in lines] == [True, False, True, True]
    assert lines[0]["error"] == "not a readable image: not a PNG or JPEG image (the content cannot be identified)"
    assert lines[2]["error"] == "not a readable image: empty file (0 bytes)"
    assert lines[3]["error"] == "not a readable image: No such file or directory"
    assert Path(lines[1]["gradcam"]).is_file()
    assert sum(lines[1]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_a_threshold_decides_on_the_covid_probability(exported: Path, tmp_path: Path, tiny: Path) -> None:
    folder = tmp_path / "strict"
    shutil.copytree(exported, folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["decision"]["threshold"] = 0.999999
    (folder / "model_card.json").write_text(json.dumps(card))
    lines = list(Predictor(folder).predict([tiny / e.path for e in scan(tiny).entries[:4]]))
    assert not any(line["covid"] for line in lines)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"study": "cxr-serch"},
            "The study must exist in the database, but there is no study 'cxr-serch'. Did you mean 'cxr-search'?",
        ),
        ({"trial": 999}, "`--trial` must be a trial of study 'cxr-search' with stored results, but got 999."),
        ({"formats": ["keras", "onnx"]}, "`--formats` must be among keras, savedmodel, tflite, but got 'onnx'."),
        (
            {"formats": ["tflite"]},
            "`--formats` must include keras (the other formats are made from it), but got ['tflite'].",
        ),
        ({"threshold": 1.5}, "`0 < threshold < 1` must hold, but got threshold=1.5."),
    ],
)
def test_bad_export_arguments(study: str, tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"study": "cxr-search", **kwargs}
    with pytest.raises(SearchError) as info:
        export(study, str(args.pop("study")), tmp_path / "out", **args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_export_never_overwrites(study: str, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(
        SearchError,
        match=r"`--out` must be a new or empty folder \(nothing is overwritten\), but '.*' holds files; use --force\.",
    ):
        export(study, "cxr-search", tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(SearchError, match=r"`--out` must be a folder, but '.*file' is a file\."):
        export(study, "cxr-search", tmp_path / "file")


def test_a_pruned_trial_cannot_be_exported(study: str, tmp_path: Path) -> None:
    store = ResultStore(study)
    row = store.trials("cxr-search")[0]
    pruned = TrialRow(
        **{c.key: getattr(row, c.key) for c in TrialRow.__table__.columns if c.key not in ("id", "created_at")}
    )
    pruned.trial_number, pruned.state = 500, "PRUNED"
    store.record(pruned)
    with pytest.raises(SearchError, match=r"`--trial` must be a completed trial, but trial 500 is PRUNED\."):
        export(study, "cxr-search", tmp_path / "out", trial=500)


def test_predict_needs_an_exported_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert predict_main(["--model", str(tmp_path), "x.png"]) == 1
    assert (
        f"`--model` must be a folder written by search.export, but '{tmp_path}' has no model_card.json."
        in capsys.readouterr().err
    )


def test_evaluate_cli_prints_the_test_figures(study: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate_main(["--study", "cxr-search", "--storage", study]) == 0
    out = capsys.readouterr().out
    assert "on the test split (" in out and "covid_sensitivity" in out


@pytest.mark.parametrize(
    ("specificity", "focus", "ratio", "expected"),
    [
        (0.9, 0.4, 1.2, []),
        (0.0, 0.4, 1.2, ["Validation COVID specificity is 0.00, below 0.50"]),
        (None, 0.4, 1.2, ["Validation COVID specificity is unknown, below 0.50"]),
        (0.9, None, None, ["Lung focus was not measured"]),
        (0.9, 0.2, 0.8, ["lung area 0.80 < 1): the model may rely on what lies outside the lungs"]),
        (0.1, 0.2, 0.8, ["specificity is 0.10", "lung area 0.80 < 1"]),
        (0.9, 0.4, None, []),  # a focus without its lung-area ratio: nothing to compare with
    ],
)
def test_result_caveats(
    specificity: float | None, focus: float | None, ratio: float | None, expected: list[str]
) -> None:
    caveats = result_caveats(specificity, focus, ratio)
    assert len(caveats) == len(expected)
    assert all(part in caveat for part, caveat in zip(expected, caveats, strict=True))
