"""External validation: a trial or an exported model measured on another labelled dataset.

The external sets are real images: a handful of the COVID-only human-masked X-rays in
../shared/cxr/lung-masks (another hospital's images, with lung masks) in a layout cxrdata reads,
and copies of the study's own images to be left out.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cxrdata import SCHEMES, scan
from search import SearchError
from search._external import StudyHashes, check_name, external_name, parse_external
from search.evaluate import evaluate_external, evaluate_folder
from search.evaluate import main as evaluate_main
from search.export import export
from search.space import TrialConfig
from search.store import ResultStore, config_row
from tests.conftest import LUNG_MASKS

REAL_IMAGES = 5


@pytest.fixture(scope="module")
def study(searched: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private copy of the finished search (external rows are written into it)."""
    folder = tmp_path_factory.mktemp("external-study")
    for name in ("optuna.db", "artifacts", ".cache"):
        source = searched / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    import optuna

    url = f"sqlite:///{folder / 'optuna.db'}"
    loaded = optuna.load_study(study_name="cxr-search", storage=url)
    loaded.set_user_attr("cxr_artifacts", str(folder / "artifacts"))
    loaded.set_user_attr("cxr_cache_dir", str(folder / ".cache"))
    return url


def _real_covid(root: Path, n: int = REAL_IMAGES) -> Path:
    """``n`` real COVID X-rays with their human lung masks, in the Kaggle layout."""
    names = sorted(p.name for p in (LUNG_MASKS / "images").iterdir())[:n]
    for sub in ("images", "masks"):
        (root / "COVID" / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(LUNG_MASKS / sub / name, root / "COVID" / sub / name)
    return root


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another hospital's COVID-only set, with lung masks."""
    return _real_covid(tmp_path_factory.mktemp("external") / "hospital-b")


@pytest.fixture(scope="module")
def exported(study: str, hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The top trial alone, measured at export on the hospital's set."""
    out = tmp_path_factory.mktemp("exported") / "winner"
    export(study, "cxr-search", out, ensemble=1, formats=["keras"], external=[(str(hospital), "v7-covid")])
    return out


def _external_rows(study: str) -> list[tuple[int, str]]:
    store = ResultStore(study)
    with store.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT trial_number, split FROM cxr_trials WHERE split LIKE 'external:%'")).all()
    return sorted((int(n), str(s)) for n, s in rows)


def _only_lung_opacity(tmp: Path) -> Path:
    root = tmp / "opacity"
    (root / "Lung_Opacity").mkdir(parents=True)
    (root / "scans").mkdir()
    source = sorted((LUNG_MASKS / "images").iterdir())[0]
    for i in range(2):
        shutil.copy(source, root / "Lung_Opacity" / f"x{i}.png")
    return root


def _copies_of_the_study(tmp: Path, tiny: Path) -> Path:
    root = tmp / "copies"
    (root / "COVID").mkdir(parents=True)
    for entry in [e for e in scan(tiny).entries if e.label == "COVID"][:2]:
        shutil.copy(tiny / entry.path, root / "COVID" / Path(entry.path).name)
    return root


def _spaced(tmp: Path, hospital: Path) -> Path:
    root = tmp / "my hospital"
    shutil.copytree(hospital, root)
    return root


# Each bad input: the command's arguments (from the study URL, a scratch folder, the tiny study dataset and
# the hospital set) and the one sentence it gets. Nothing is stored for any of them.
Case = Callable[[str, Path, Path, Path], tuple[list[str], str]]
BAD: dict[str, Case] = {
    "missing path": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(tmp / "nope")],
        f"`--external` must be a folder of labelled images (one folder per class), but '{tmp / 'nope'}' does not exist.",
    ),
    "a file, not a folder": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(next((h / "COVID" / "images").iterdir()))],
        f"`--external` must be a folder of labelled images (one folder per class), but "
        f"'{next((h / 'COVID' / 'images').iterdir())}' is not a folder.",
    ),
    "no class the model knows": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(_only_lung_opacity(tmp))],
        f"The external dataset '{tmp / 'opacity'}' must hold a class the model knows (COVID, Normal, Viral Pneumonia), "
        "but it holds Lung_Opacity (2 images), 'scans' (no class).",
    ),
    "bad name": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(h), "--name", "b; drop"],
        "`--name` must be 1 to 32 letters, digits, '.', '_' or '-' (the first a letter or digit), but got 'b; drop'.",
    ),
    "too long a name": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(h), "--name", "x" * 33],
        f"`--name` must be 1 to 32 letters, digits, '.', '_' or '-' (the first a letter or digit), but got '{'x' * 33}'.",
    ),
    "a folder name that is no name": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(_spaced(tmp, h))],
        "`--name` must be given when the folder's name is not 1 to 32 letters, digits, '.', '_' or '-' (the first "
        "a letter or digit), but the folder is named 'my hospital'.",
    ),
    "model folder without a card": lambda url, tmp, tiny, h: (
        ["--model", str(tmp), "--external", str(h), "--storage", url],
        f"`--model` must be a folder written by search.export, but '{tmp}' has no model_card.json.",
    ),
    "only copies of the study's images": lambda url, tmp, tiny, h: (
        ["--study", "cxr-search", "--storage", url, "--external", str(_copies_of_the_study(tmp, tiny))],
        f"The external dataset '{tmp / 'copies'}' must hold images the study never saw, but all 2 of its images of "
        "the model's classes copy the study's (2 exact, 0 near copies).",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_external_inputs_are_one_sentence(
    case: str, study: str, tiny: Path, hospital: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, sentence = BAD[case](study, tmp_path, tiny, hospital)
    before = _external_rows(study)
    assert evaluate_main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {sentence}"
    assert captured.out == ""
    assert _external_rows(study) == before, "nothing is stored for a bad input"


def test_a_one_class_set_gives_covid_sensitivity_alone(
    study: str, hospital: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evaluate_main(["--study", "cxr-search", "--storage", study, "--external", str(hospital)]) == 0
    out = capsys.readouterr().out
    assert "one class only (COVID): specificity, AUC and accuracy are undefined; COVID sensitivity alone" in out
    assert "nan" not in out.lower()
    assert f"{REAL_IMAGES} images (COVID {REAL_IMAGES})" in out
    assert "Stored as split 'external:hospital-b' of trial" in out and "(never used to rank)" in out
    top = ResultStore(study).ranked("cxr-search", limit=1)[0]
    row = next(r for r in ResultStore(study).trials("cxr-search", split="external:hospital-b"))
    assert row.trial_number == top.trial_number, "the top-ranked trial by default"
    assert row.covid_threshold == pytest.approx(top.covid_threshold), "the trial's validation threshold, unchanged"
    assert row.op_sensitivity is not None and row.op_sensitivity_low is not None and row.op_sensitivity_high is not None
    assert row.op_sensitivity_low <= row.op_sensitivity <= row.op_sensitivity_high
    for undefined in ("op_specificity", "covid_specificity", "covid_auc", "roc_auc", "accuracy", "balanced_accuracy"):
        assert getattr(row, undefined) is None, undefined
    assert row.lung_mask_source == "dataset" and row.lung_focus_n == REAL_IMAGES, "the set's own human masks"
    assert row.lung_focus is None or 0 <= row.lung_focus <= 1
    assert row.loss is None and row.dataset_fingerprint == top.dataset_fingerprint
    described = json.loads(row.external_json or "{}")
    assert described["n"] == REAL_IMAGES and described["one_class"] == "COVID"
    assert described["path"] == str(hospital.resolve()) and described["left_out"]["copies_of_study_images"] == 0
    assert not any(isinstance(v, float) and math.isnan(v) for v in described.values())


def test_copies_of_the_study_and_unknown_classes_are_counted_and_left_out(
    study: str, tiny: Path, tmp_path: Path
) -> None:
    root = _real_covid(tmp_path / "mixed", 3)
    entries = scan(tiny).entries
    covid = [e for e in entries if e.label == "COVID"][:2]
    for e in covid:  # exact copies
        shutil.copy(tiny / e.path, root / "COVID" / "images" / f"copy-{Path(e.path).name}")
    normal = next(e for e in entries if e.label == "Normal")
    (root / "Normal").mkdir()
    with Image.open(tiny / normal.path) as image:  # a resized, re-encoded copy
        image.convert("L").resize((64, 64), Image.Resampling.BICUBIC).save(root / "Normal" / "near.jpg", quality=90)
    (root / "Lung_Opacity").mkdir()
    shutil.copy(tiny / covid[0].path, root / "Lung_Opacity" / "o.png")
    done = evaluate_external(study, "cxr-search", None, str(root), "mixed")
    ext = done.result.set
    assert (ext.exact_copies, ext.near_copies) == (2, 1)
    assert ext.unknown_classes == {"Lung_Opacity": 1}, "the three-class model knows no Lung_Opacity"
    assert done.result.metrics.n == 3 and done.result.one_class == "COVID"
    left = done.result.summary()["left_out"]
    assert left["copies_of_study_images"] == 3 and left["classes_the_model_does_not_know"] == {"Lung_Opacity": 1}
    assert "\n".join(done.result.lines()).count("3 copies of the study's images (2 exact, 1 near)") == 1


def test_an_exported_model_is_measured_from_its_folder_and_stored_on_its_trial(
    exported: Path, study: str, hospital: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = json.loads((exported / "model_card.json").read_text())
    argv = ["--model", str(exported), "--external", str(hospital), "--name", "folder-run", "--storage", study]
    assert evaluate_main(argv) == 0
    out = capsys.readouterr().out
    assert f"Stored as split 'external:folder-run' of trial {card['trial']} of study 'cxr-search'" in out
    assert "0 copies of the study's images (0 exact, 0 near)" in out
    row = ResultStore(study).trials("cxr-search", split="external:folder-run")[0]
    assert row.trial_number == card["trial"]
    assert row.covid_threshold == pytest.approx(card["decision"]["threshold"])
    nowhere = f"sqlite:///{tmp_path / 'none.db'}"
    printed = evaluate_folder(exported, str(hospital), "x", nowhere)
    assert (
        printed.stored
        == f"Not stored (printed only): there is no results database at {nowhere} (give the study's with --storage)."
    )
    assert not (tmp_path / "none.db").exists(), "looking for the study creates no database"
    assert printed.result.metrics.n == REAL_IMAGES


def test_a_folder_exported_before_the_hashes_says_the_check_could_not_be_done(
    exported: Path, hospital: Path, tmp_path: Path, study: str
) -> None:
    old = tmp_path / "old"
    shutil.copytree(exported, old)
    card = json.loads((old / "model_card.json").read_text())
    del card["files"]["dataset_hashes"]
    card["kind"], card["trial"] = "ensemble", None  # and an ensemble of trials: no trial to store it on
    (old / "dataset_hashes.json").unlink()
    (old / "model_card.json").write_text(json.dumps(card))
    done = evaluate_folder(old, str(hospital), "old", study)
    assert done.result.set.exact_copies is None
    assert (
        done.stored
        == "Not stored (printed only): the model is an ensemble of several trials, not one trial of a study."
    )
    assert ResultStore(study).trials("cxr-search", split="external:old") == []
    expected = (
        f"copies of the study's images: the check could not be done ('{old}' was exported before search.export "
        "wrote the study's image hashes (dataset_hashes.json))"
    )
    assert expected in "\n".join(done.result.lines())


def test_export_external_writes_the_card_section(exported: Path, study: str) -> None:
    card = json.loads((exported / "model_card.json").read_text())
    assert card["files"]["dataset_hashes"] == "dataset_hashes.json"
    hashes = StudyHashes.read(exported / "dataset_hashes.json")
    assert hashes.fingerprint == card["dataset"]["fingerprint"] and len(hashes.sha256) == 48, "every study image"
    [external] = card["external_validation"]
    assert external["name"] == "v7-covid" and external["split"] == "external:v7-covid"
    assert external["n"] == REAL_IMAGES and external["images"]["COVID"] == REAL_IMAGES
    assert external["left_out"]["copies_of_study_images"] == 0
    assert external["left_out"]["classes_the_model_does_not_know"] == {}
    assert external["one_class"] == "COVID"
    op = external["at_threshold"]
    assert op["threshold"] == card["decision"]["threshold"]
    assert op["sensitivity"] is not None and op["sensitivity_ci"][0] <= op["sensitivity"] <= op["sensitivity_ci"][1]
    assert op["specificity"] is None and external["covid_auc"] is None and external["accuracy"] is None
    assert external["lung_focus"]["n"] == REAL_IMAGES and external["lung_focus"]["source"] == "dataset"
    markdown = (exported / "MODEL_CARD.md").read_text()
    assert "## External validation" in markdown
    assert "never used to choose the model, its members or its threshold" in markdown
    assert f"| v7-covid | {REAL_IMAGES} (COVID {REAL_IMAGES}) |" in markdown
    assert "one class only (COVID): specificity, AUC and accuracy are undefined" in markdown
    assert "dataset_hashes.json" in markdown.split("Files:")[1]
    rows = ResultStore(study).trials("cxr-search", split="external:v7-covid")
    assert [r.trial_number for r in rows] == [card["trial"]], "one trial's own model: its row sits beside its test row"
    tested = [r for r in ResultStore(study).trials("cxr-search", split="test") if r.trial_number == card["trial"]]
    assert [(r.lung_focus, r.lung_mask_source) for r in tested] == [(None, None)], "focus is never measured on test"
    assert rows[0].lung_focus_n == REAL_IMAGES, "but it is on the external set"


def test_export_refuses_two_external_sets_of_one_name(study: str, hospital: Path, tmp_path: Path) -> None:
    with pytest.raises(SearchError) as info:
        export(study, "cxr-search", tmp_path / "out", external=[(str(hospital), "a"), (str(hospital), "a")])
    assert str(info.value) == (
        "Each external set must have its own name, but 'a' is given twice; name them with --external PATH:NAME."
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data/hospital-b", ("data/hospital-b", None)),
        ("data/hospital-b:hb", ("data/hospital-b", "hb")),
        ("/abs/set:v2.1", ("/abs/set", "v2.1")),
        ("relative:dir/inside", ("relative:dir/inside", None)),  # a slash after the colon: a path
    ],
)
def test_an_external_path_may_carry_its_name(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_external(text) == expected


@pytest.mark.parametrize("name", ["", ".hidden", "a b", "a/b", "x" * 33, "ümlaut", "-x"])
def test_names_are_short_and_plain(name: str) -> None:
    with pytest.raises(SearchError, match=r"^`--name` must be 1 to 32 letters"):
        check_name(name)


def test_a_name_defaults_to_the_folder(tmp_path: Path) -> None:
    (tmp_path / "Hospital_B-2021").mkdir()
    assert external_name(tmp_path / "Hospital_B-2021", None) == "Hospital_B-2021"
    assert external_name(tmp_path / "whatever", "given") == "given"


def test_study_hashes_find_exact_and_near_copies(tiny: Path, tmp_path: Path) -> None:
    study = scan(tiny)
    hashes = StudyHashes.of(study)
    (tmp_path / "COVID").mkdir()
    first = study.entries[0]
    shutil.copy(tiny / first.path, tmp_path / "COVID" / "exact.png")
    with Image.open(tiny / study.entries[5].path) as image:
        image.convert("L").resize((64, 64), Image.Resampling.BICUBIC).save(tmp_path / "COVID" / "near.jpg", quality=90)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)).save(
        tmp_path / "COVID" / "new.png"
    )
    entries = scan(tmp_path).entries
    exact, near = hashes.copies(entries)
    by_name = {Path(e.path).name: (bool(x), bool(n)) for e, x, n in zip(entries, exact, near, strict=True)}
    assert by_name == {"exact.png": (True, False), "near.jpg": (False, True), "new.png": (False, False)}
    saved = tmp_path / "hashes.json"
    saved.write_text(hashes.to_json())
    assert StudyHashes.read(saved) == hashes
    saved.write_text('{"dataset_fingerprint": "x", "sha256": ["zz"], "phash": ["00"], "dhash": ["00"]}')
    with pytest.raises(SearchError, match=r"must hold the study's image hashes as search\.export writes them"):
        StudyHashes.read(saved)


def test_an_external_row_with_perfect_figures_does_not_move_the_ranking(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = ResultStore(url)
    store.create_schema()
    config = TrialConfig("MobileNet_0.25", 1.0, 8, 0.1, 1e-3, 0.0, "three")
    for number, sensitivity in enumerate((0.9, 0.6, 0.3)):
        row = config_row("s", number, config, "COMPLETE")
        row.op_sensitivity, row.covid_specificity, row.lung_focus, row.covid_auc = sensitivity, 0.9, 0.5, 0.8
        store.record(row)
    before = [r.trial_number for r in store.ranked("s")]
    for split in ("external:perfect", "test"):  # the worst trial, perfect elsewhere
        row = config_row("s", 2, config, "COMPLETE")
        row.split = split
        row.op_sensitivity, row.covid_specificity, row.lung_focus, row.covid_auc = 1.0, 1.0, 1.0, 1.0
        row.covid_sensitivity = row.accuracy = 1.0
        store.record(row)
    assert [r.trial_number for r in store.ranked("s")] == before == [0, 1, 2]
    assert {r.split for r in store.ranked("s")} == {"val"}
    assert [r.op_sensitivity for r in store.trials("s", split="external:perfect")] == [1.0]


def test_every_scheme_names_its_classes_in_the_no_known_class_sentence(tmp_path: Path) -> None:
    from search._external import prepare_external

    root = _only_lung_opacity(tmp_path)
    with pytest.raises(SearchError) as info:
        prepare_external(root, "x", SCHEMES["three"], None)
    assert "(COVID, Normal, Viral Pneumonia)" in str(info.value)
    binary = prepare_external(root, "x", SCHEMES["binary"], None)  # binary pools every other class
    assert binary.labels.tolist() == [1, 1] and binary.unknown_classes == {}
    assert binary.exact_copies is None and binary.duplicate_note == "the study's image hashes are not at hand"


def _capture_inputs(monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Replace the model's prediction by a record of what it is shown (every image called COVID)."""
    import search.evaluate

    seen: dict[str, np.ndarray] = {}

    def shown(model: object, arrays: Any, indices: np.ndarray, labels: np.ndarray, batch_size: int) -> np.ndarray:
        seen["images"] = np.asarray(arrays.images)[indices]
        return np.tile([0.9, 0.05, 0.05], (len(indices), 1))

    monkeypatch.setattr(search.evaluate, "predict", shown)
    return seen


REGION_CONFIG = TrialConfig(
    "MobileNet_0.25", 1.0, 8, 0.0, 1e-3, 0.0, "three", input_region="lung_crop", image_size=32, crop=0.05
)


def test_the_model_sees_external_images_cut_as_in_its_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrdata import apply_region, load_images
    from search._external import measure_external, prepare_external

    seen = _capture_inputs(monkeypatch)
    external = prepare_external(_real_covid(tmp_path / "h", 3), "h", SCHEMES["three"], None)
    result = measure_external(
        None, REGION_CONFIG, external, threshold=0.5, target=None, threshold_from="given",
        heatmaps=lambda images: np.ones(images.shape[:3], dtype=np.float32),
    )  # fmt: skip
    arrays = load_images(external.manifest, 32, crop=0.05)
    expected = apply_region(np.asarray(arrays.images), arrays.masks[..., 0] > 0, arrays.has_mask, "lung_crop")
    np.testing.assert_array_equal(seen["images"], expected.images)
    assert not np.array_equal(expected.images, arrays.images), "the lungs' box, resized: not the whole image"
    assert result.metrics.operating is not None and result.metrics.operating.sensitivity == 1.0
    assert result.focus is not None and result.focus.n == 3 and result.focus_source == "dataset"


def test_a_lung_region_without_masks_or_segmenter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search._external import measure_external, prepare_external

    _capture_inputs(monkeypatch)
    root = tmp_path / "bare"
    (root / "COVID").mkdir(parents=True)
    for source in sorted((LUNG_MASKS / "images").iterdir())[:2]:
        shutil.copy(source, root / "COVID" / source.name)
    external = prepare_external(root, "bare", SCHEMES["three"], None)
    with pytest.raises(SearchError) as info:
        measure_external(
            None, REGION_CONFIG, external, threshold=0.5, target=None, threshold_from="given",
            heatmaps=lambda images: images[..., 0],
        )  # fmt: skip
    assert str(info.value) == (
        f"A model with `input_region=lung_crop` must see the lungs of every external image, but 2 of the 2 images "
        f"of '{root}' have no lung mask and no lung segmenter is at hand (the study's --lung-model, the export's, "
        "or cxrdata's packaged one)."
    )
