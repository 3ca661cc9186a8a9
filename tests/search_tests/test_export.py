"""Evaluate once on the test split, export, reload, predict: the round trip and its bad inputs."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from cxrdata import decode_image, prepare_image, scan
from search import SearchError
from search._hidden import hidden_lungs_auc, hidden_lungs_entries, hidden_lungs_proba
from search._records import find_trial, load_models, study_info
from search.evaluate import main as evaluate_main
from search.evaluate import study_data
from search.export import KERAS_TOLERANCE, TFLITE_TOLERANCE, export, result_caveats, tflite_predict
from search.predict import Predictor
from search.predict import main as predict_main
from search.space import TrialConfig
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
    """The top-ranked trial alone (``--ensemble 1``)."""
    out = tmp_path_factory.mktemp("exported") / "winner"
    export(study, "cxr-search", out, ensemble=1)
    return out


@pytest.fixture(scope="module")
def ensembled(study: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default export: greedy selection over the top trials, forced to two members by --members."""
    out = tmp_path_factory.mktemp("exported") / "ensemble"
    top = [r.trial_number for r in ResultStore(study).ranked("cxr-search")]
    # Two members with equal weight whatever their losses: greedy selection over the same
    # trial twice, then the other, would pick by loss; --members with a forced pair keeps the
    # test independent of which random tiny model happens to be better.
    export(study, "cxr-search", out, members=top[:2])
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
    assert card["trial"] == top.trial_number, "--ensemble 1 is the top-ranked trial"
    assert card["kind"] == "single" and [m["trial"] for m in card["members"]] == [top.trial_number]
    assert card["classes"] == ["COVID", "Normal", "Viral Pneumonia"] and card["covid_class_index"] == 0
    assert card["scheme"] == "three" and card["input"]["size"] == 32
    assert card["config"]["backbone"] == "MobileNet_0.25"
    assert card["validation"]["covid_sensitivity"] == pytest.approx(top.covid_sensitivity)
    assert card["decision"]["threshold"] == pytest.approx(top.covid_threshold, abs=1e-6), "the trial's own threshold"
    assert card["decision"]["target"] == {"kind": "specificity", "value": 0.95}
    assert card["validation"]["at_threshold"]["specificity"] == pytest.approx(top.op_specificity)
    assert card["test"]["split"] == "test" and card["test"]["n"] > 0
    assert card["test"]["at_threshold"]["threshold"] == card["decision"]["threshold"]
    assert card["lung_focus"] == top.lung_focus
    assert top.hidden_lungs_auc is not None and card["hidden_lungs_auc"] == top.hidden_lungs_auc
    assert (
        f"with the lungs hidden (0.5: it cannot tell COVID without the lungs): {top.hidden_lungs_auc:.3f}."
        in (exported / "MODEL_CARD.md").read_text()
    )
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
    assert card["trial"] in [r.trial_number for r in test_rows]
    mine = next(r for r in test_rows if r.trial_number == card["trial"])
    assert mine.covid_sensitivity == card["test"]["covid_sensitivity"]
    assert mine.op_sensitivity == card["test"]["at_threshold"]["sensitivity"]
    assert mine.covid_threshold == pytest.approx(card["decision"]["threshold"])
    assert all(r.split == "val" for r in store.ranked("cxr-search")), "test figures never rank"


def _member_proba(study: str, card: dict[str, object], images: np.ndarray) -> np.ndarray:
    """What the card's members predict, averaged by their weights, from the study's own stored models."""
    store, info = ResultStore(study), study_info(study, "cxr-search")
    total = np.zeros((len(images), 3))
    for member in card["members"]:  # type: ignore[attr-defined]
        row = find_trial(store, "cxr-search", member["trial"])
        (trained,) = load_models(row, info)
        total += member["weight"] * trained.predict(images, verbose=0)
    return total


@pytest.mark.parametrize("kind", ["exported", "ensembled"])
def test_predict_round_trip_matches_the_members(
    kind: str, request: pytest.FixtureRequest, study: str, tiny: Path
) -> None:
    folder: Path = request.getfixturevalue(kind)
    card = json.loads((folder / "model_card.json").read_text())
    paths = [tiny / e.path for e in scan(tiny).entries[:6]]
    lines = list(Predictor(folder).predict(paths))
    images = np.stack([prepare_image(decode_image(p), 32) for p in paths]).astype(np.float32)
    expected = _member_proba(study, card, images)
    got = np.array([[line["probabilities"][c] for c in ("COVID", "Normal", "Viral Pneumonia")] for line in lines])
    np.testing.assert_allclose(got, expected, atol=KERAS_TOLERANCE)
    threshold = card["decision"]["threshold"]
    for line, proba in zip(lines, expected, strict=True):
        assert line["covid"] == (proba[0] >= threshold), "the COVID decision is the card's threshold, not argmax"
        others = ["Normal", "Viral Pneumonia"][int(np.argmax(proba[1:]))]
        assert line["prediction"] == ("COVID" if line["covid"] else others)


def test_an_ensemble_card_names_its_members_weights_and_threshold(ensembled: Path, study: str) -> None:
    card = json.loads((ensembled / "model_card.json").read_text())
    top = [r.trial_number for r in ResultStore(study).ranked("cxr-search")][:2]
    assert card["selection"]["pool"] == top
    assert len(card["selection"]["validation_log_loss"]) == 25
    assert {m["trial"] for m in card["members"]} <= set(top)
    assert sum(m["weight"] for m in card["members"]) == pytest.approx(1.0)
    assert card["kind"] == ("ensemble" if len(card["members"]) > 1 else "single")
    assert 0 < card["decision"]["threshold"] < 1 and card["decision"]["target"]["value"] == 0.95
    assert card["validation"]["at_threshold"]["specificity"] >= 0.95, "chosen on validation to reach the target"
    markdown = (ensembled / "MODEL_CARD.md").read_text()
    assert "COVID sensitivity at the threshold [95% CI]" in markdown
    if card["kind"] == "ensemble":  # measured on the ensemble itself: no member trained on validation
        assert card["hidden_lungs_auc_of"] == "ensemble" and "(the ensemble itself)" in markdown
        sd = study_data(study, "cxr-search")
        config = replace(TrialConfig.from_json(find_trial(sd.store, "cxr-search", top[0]).config_json), image_size=32)
        split = sd.trial_data.split(config.scheme)
        entries = hidden_lungs_entries(sd.trial_data, config, split.indices["val"])
        exported = keras.models.load_model(ensembled / "model.keras", safe_mode=True)
        again = hidden_lungs_auc(split.labels[entries], hidden_lungs_proba(exported, sd.trial_data, config, entries))
        assert again is not None and card["hidden_lungs_auc"] == pytest.approx(again, abs=0.02)
    assert card["parity"]["keras"] <= KERAS_TOLERANCE and card["parity"]["tflite"] <= TFLITE_TOLERANCE


def test_an_ensemble_export_writes_no_trial_test_row(ensembled: Path, study: str) -> None:
    card = json.loads((ensembled / "model_card.json").read_text())
    if card["kind"] == "ensemble":
        rows = ResultStore(study).trials("cxr-search", split="test")
        assert all(r.trial_number != m["trial"] or len(rows) == 1 for r in rows for m in card["members"][1:])


def test_an_ensemble_gradcam_is_its_members_weighted_map(ensembled: Path, tiny: Path, tmp_path: Path) -> None:
    path = tiny / scan(tiny).entries[0].path
    lines = list(Predictor(ensembled).predict([path], tmp_path / "cams"))
    assert Path(lines[0]["gradcam"]).is_file()


def test_tflite_agrees_within_its_stated_tolerance(exported: Path, tiny: Path) -> None:
    paths = [tiny / e.path for e in scan(tiny).entries[:8]]
    images = np.stack([prepare_image(decode_image(p), 32) for p in paths]).astype(np.float32)
    keras_model = keras.models.load_model(exported / "model.keras", safe_mode=True)
    diff = np.abs(tflite_predict(exported / "model.tflite", images) - keras_model.predict(images, verbose=0)).max()
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
        ({"ensemble": 0}, "`--ensemble >= 1` must hold (1 exports the top-ranked trial alone), but got 0."),
        (
            {"ensemble": 4},
            "`--ensemble` must be at most the 3 completed trial(s) of 'cxr-search' with a saved model "
            "and the leader's input region, but got 4.",
        ),
        ({"members": [0, 0]}, "`--members` must name distinct trials, but got [0, 0]."),
        (
            {"trial": 0, "ensemble": 2},
            "Give at most one of --trial, --ensemble and --members, but got --trial and --ensemble.",
        ),
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


def test_force_leaves_only_the_new_export(study: str, tmp_path: Path) -> None:
    out = tmp_path / "winner"
    out.mkdir()
    (out / "stale.txt").write_text("from an older export")
    (out / "model.keras").write_text("not a model")
    export(study, "cxr-search", out, ensemble=1, formats=["keras", "tflite"], force=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md",
        "dataset_hashes.json",
        "model.keras",
        "model.tflite",
        "model_card.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["winner"], "no temporary or previous folder is left beside it"
    keras.models.load_model(out / "model.keras", safe_mode=True)


class _CrashError(Exception):
    pass


@pytest.mark.parametrize("force", [False, True])
def test_a_crash_mid_export_leaves_the_destination_as_it_was(
    study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    out = tmp_path / "winner"
    if force:
        out.mkdir()
        (out / "model.keras").write_text("the previous export")

    def crash(card: dict[str, object]) -> str:
        raise _CrashError  # the last file: the model and its JSON card are already written

    monkeypatch.setattr("search.export._export.markdown", crash)
    with pytest.raises(_CrashError):
        export(study, "cxr-search", out, ensemble=1, formats=["keras"], force=force)
    if force:
        assert [p.name for p in out.iterdir()] == ["model.keras"]
        assert (out / "model.keras").read_text() == "the previous export"
    else:
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["winner"] if force else []), "no temporary folder is left"


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


def test_evaluate_and_export_leave_no_downloaded_model_behind(
    study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert evaluate_main(["--study", "cxr-search", "--storage", study]) == 0
    export(study, "cxr-search", tmp_path / "out", ensemble=1, formats=["keras"])
    assert (tmp_path / "out" / "model.keras").is_file()
    left = [p.name for p in scratch.rglob("*.keras")]
    assert left == [], f"the stored models are removed once loaded, but {left} remain"


@pytest.mark.parametrize(
    ("specificity", "focus", "ratio", "hidden", "expected"),
    [
        (0.9, 0.4, 1.2, 0.5, []),
        (0.0, 0.4, 1.2, 0.5, ["Validation COVID specificity is 0.00, below 0.50"]),
        (None, 0.4, 1.2, 0.5, ["Validation COVID specificity is unknown, below 0.50"]),
        (0.9, None, None, None, ["Lung focus was not measured"]),
        (0.9, 0.2, 0.8, 0.5, ["lung area 0.80 < 1): the model may rely on what lies outside the lungs"]),
        (0.1, 0.2, 0.8, 0.5, ["specificity is 0.10", "lung area 0.80 < 1"]),
        (0.9, 0.4, None, 0.5, []),  # a focus without its lung-area ratio: nothing to compare with
        (
            0.9,
            0.9,
            2.7,
            0.83,
            [
                "With the lungs hidden the model still tells COVID from the other classes (validation COVID AUC "
                "0.83; 0.5 is chance): part of its decision can come from what lies outside the lungs, wherever "
                "its Grad-CAM evidence sits. A model searched with `--regions lung_mask` sees only the lungs and cannot."
            ],
        ),
        (0.9, 0.9, 2.7, 0.59, []),  # within chance on a validation split
        (0.9, 0.9, 2.7, 0.41, []),
        (0.9, 0.9, 2.7, 0.3, ["(validation COVID AUC 0.30; 0.5 is chance)"]),  # inverted: the outside still tells
        (0.9, 0.9, 2.7, None, []),  # unmeasured (an older study): nothing to say
    ],
)
def test_result_caveats(
    specificity: float | None, focus: float | None, ratio: float | None, hidden: float | None, expected: list[str]
) -> None:
    caveats = result_caveats(specificity, focus, ratio, hidden)
    assert len(caveats) == len(expected)
    assert all(part in caveat for part, caveat in zip(expected, caveats, strict=True))


def test_an_ensemble_refuses_members_of_different_schemes(study: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(study.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    store = ResultStore(url)
    top = store.ranked("cxr-search")
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE cxr_trials SET scheme = 'binary' WHERE trial_number = :n"), {"n": top[1].trial_number}
        )
    with pytest.raises(SearchError) as info:
        export(url, "cxr-search", tmp_path / "out", ensemble=2)
    assert str(info.value) == (
        f"An ensemble's members must share one class scheme, class order and split, but trials "
        f"{top[0].trial_number} (three), {top[1].trial_number} (binary) do not; name compatible trials with --members."
    )


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1"])
def test_a_target_outside_zero_and_one_is_refused(
    study: str, tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.export import main as export_main

    code = export_main(
        ["--study", "cxr-search", "--storage", study, "--out", str(tmp_path / "o"), "--target-specificity", value]
    )
    assert code == 1
    assert f"`0 < target specificity < 1` must hold, but got {float(value)}." in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "nothing is written for a bad argument"


def test_refit_trains_again_on_train_and_validation(study: str, tmp_path: Path) -> None:
    before = len(ResultStore(study).trials("cxr-search", split="test"))
    result = export(study, "cxr-search", tmp_path / "refit", ensemble=1, refit=True, formats=["keras"])
    card = result.card
    assert card["refit"] is True and card["kind"] == "single"
    top = ResultStore(study).ranked("cxr-search", limit=1)[0]
    assert (card["hidden_lungs_auc_of"], card["hidden_lungs_auc"]) == ("trial", top.hidden_lungs_auc), (
        "a refit model trained on validation: the trial's own figure, measured before"
    )
    assert card["decision"]["threshold"] == pytest.approx(top.covid_threshold, abs=1e-6), "the pre-refit threshold"
    refitted = keras.models.load_model(tmp_path / "refit" / "model.keras", safe_mode=True)
    (stored,) = load_models(top, study_info(study, "cxr-search"))
    weights = [np.abs(a - b).max() for a, b in zip(refitted.get_weights(), stored.get_weights(), strict=True)]
    assert max(weights) > 0, "the refit model is a newly trained one"
    assert len(ResultStore(study).trials("cxr-search", split="test")) == before, "no test row for a model not stored"
    assert (
        "Refit: every member was trained again on train+validation"
        in (tmp_path / "refit" / "MODEL_CARD.md").read_text()
    )
