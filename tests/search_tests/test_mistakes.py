"""What a trial gets wrong: the misclassified validation images picked at its own threshold, their
Grad-CAM overlays stored as "mistake" artifacts, and the leaderboard's view of them."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdata import scan, to_original
from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from search.store import (
    MISTAKES,
    ResultStore,
    count_mistakes,
    decide,
    mistake_candidates,
    parse_mistakes,
    pick_mistakes,
)
from tests.conftest import launch

# Labels: 0 COVID, 1 Normal, 2 Viral Pneumonia; columns: P(COVID), P(Normal), P(Viral Pneumonia).
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 1, 0, 2])
PROBA = np.array(
    [
        [0.30, 0.50, 0.20],  # 0: COVID, missed (0.30 < 0.4)
        [0.10, 0.10, 0.80],  # 1: COVID, missed with the most confidence
        [0.90, 0.05, 0.05],  # 2: COVID, found
        [0.60, 0.30, 0.10],  # 3: Normal called COVID
        [0.45, 0.50, 0.05],  # 4: Normal called COVID, less sure
        [0.20, 0.70, 0.10],  # 5: Viral Pneumonia called Normal (0.70)
        [0.10, 0.05, 0.85],  # 6: right
        [0.35, 0.15, 0.50],  # 7: Normal called Viral Pneumonia (0.50)
        [0.40, 0.30, 0.30],  # 8: COVID exactly at the threshold: found
        [0.05, 0.90, 0.05],  # 9: Viral Pneumonia called Normal (0.90)
    ]
)


def test_the_decision_is_the_exported_models() -> None:
    assert decide(PROBA, 0.4).tolist() == [1, 2, 0, 0, 0, 1, 2, 2, 0, 1]
    assert decide(PROBA, None).tolist() == PROBA.argmax(axis=1).tolist(), "no threshold: argmax"
    assert decide(PROBA, 0.95)[[2, 3]].tolist() == [1, 1], "below the threshold: the likeliest other class"


M, F, X = "missed_covid", "false_covid", "other"


@pytest.mark.parametrize(
    ("threshold", "limit", "expected"),
    [
        (0.4, 8, [(1, M), (0, M), (3, F), (4, F), (9, X), (5, X), (7, X)]),
        (0.4, 3, [(1, M), (0, M), (3, F)]),
        (0.95, 8, [(1, M), (0, M), (8, M), (2, M), (9, X), (5, X), (7, X)]),  # no false COVID
        (0.05, 8, [(3, F), (4, F), (7, F), (5, F), (6, F), (9, F)]),  # everything flagged
        (None, 8, [(1, M), (0, M), (3, F), (9, X), (5, X), (7, X)]),  # no threshold: argmax
    ],
)
def test_mistakes_are_picked_missed_covid_first_most_confident_first(
    threshold: float | None, limit: int, expected: list[tuple[int, str]]
) -> None:
    assert pick_mistakes(LABELS, PROBA, threshold, limit) == expected
    counts = count_mistakes(LABELS, PROBA, threshold)
    picked = pick_mistakes(LABELS, PROBA, threshold, len(LABELS))
    assert counts.misclassified == len(picked) == counts.missed_covid + counts.false_covid + counts.other
    assert sum(map(sum, counts.confusion)) == counts.n == len(LABELS)
    assert np.trace(np.array(counts.confusion)) == counts.n - counts.misclassified


def test_fold_candidates_hold_every_pick_at_any_threshold() -> None:
    """A cross-validated trial keeps Grad-CAM for the candidates only: picking among them must give
    what picking among all gives, whatever threshold the pooled predictions choose later."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        n, k = int(rng.integers(1, 40)), int(rng.integers(2, 5))
        labels = rng.integers(0, k, n)
        proba = rng.dirichlet(np.ones(k) * rng.uniform(0.2, 3), n).round(int(rng.integers(1, 4)))  # with ties
        limit = int(rng.integers(1, 10))
        kept = mistake_candidates(labels, proba, limit)
        assert len(kept) <= 3 * limit
        for threshold in [*np.unique(proba[:, 0]), 0.0, 1.1]:
            everything = [p for p, _ in pick_mistakes(labels, proba, float(threshold), limit)]
            among = [int(kept[p]) for p, _ in pick_mistakes(labels[kept], proba[kept], float(threshold), limit)]
            assert among == everything, (trial, threshold)


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ("{", "The column mistakes_json of this trial must hold JSON, but it does not ("),
        ("{}", "The column mistakes_json of this trial must hold a JSON list, but holds a dict."),
        ('[{"entry": 1}]', "Mistake 0 of this trial must be an object with exactly the keys entry, path, label,"),
        (
            '[{"entry": true, "path": "a", "label": "COVID", "predicted": "Normal", "covid_probability": 0.1, '
            '"probabilities": {}, "artifact_id": "x", "kind": "missed_covid"}]',
            "Mistake 0 of this trial must be an object whose entry is a int, but it is not; it is left out.",
        ),
        (
            '[{"entry": 1, "path": "a", "label": "COVID", "predicted": "Normal", "covid_probability": 0.1, '
            '"probabilities": {}, "artifact_id": "x", "kind": "sneaky"}]',
            "Mistake 0 of this trial must be an object whose kind is one of missed_covid, false_covid, other,",
        ),
    ],
)
def test_corrupt_stored_mistakes_are_reported_not_raised(stored: str, problem: str) -> None:
    items, problems = parse_mistakes(stored)
    assert items == [] and len(problems) == 1 and problems[0].startswith(problem)


# --- a real tiny search ----------------------------------------------------------------------

FLAGS = [
    "--weights", "none", "--image-size", "64", "--max-epochs", "2", "--backbones", "MobileNet_0.25",
    # A threshold for a sensitivity target: these barely trained models then flag many non-COVID
    # images as well, so every trial has more mistakes than it keeps.
    "--target-sensitivity", "0.9",
    # Plain training: the overlays are compared picture by picture, so some must show a heatmap.
    # On a 2x2 map (64 px) a barely trained, focus-trained random backbone left all 8 blank.
    "--focus-weight", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("data"), SyntheticSpec(per_class=24, size=64, seed=3))


@pytest.fixture(scope="module")
def one_split(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("one-split")
    done = launch("--trials", "2", "--data", str(data), *FLAGS, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def folded(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("folded")
    done = launch("--trials", "1", "--folds", "2", "--data", str(data), *FLAGS, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def _check_trials(workdir: Path, kind: str) -> list[tuple[int, list[dict[str, object]]]]:
    """Every completed trial's stored mistakes agree with its stored predictions and threshold."""
    url = f"sqlite:///{workdir / 'optuna.db'}"
    store = ResultStore(url)
    rows = [r for r in store.trials("cxr-search") if r.state == "COMPLETE"]
    assert rows, "the search completed a trial"
    stored = store.predictions("cxr-search", rows)
    found = []
    for row in rows:
        items, problems = parse_mistakes(row.mistakes_json)
        assert problems == []
        predictions = stored[row.trial_number]
        assert predictions.kind == kind
        names = json.loads(row.class_names_json or "[]")
        expected = pick_mistakes(predictions.labels, predictions.proba, row.covid_threshold, MISTAKES)
        total = count_mistakes(predictions.labels, predictions.proba, row.covid_threshold).misclassified
        assert total > MISTAKES, "enough mistakes that only some are kept"
        assert [it["entry"] for it in items] == [int(predictions.indices[p]) for p, _ in expected]
        assert [it["kind"] for it in items] == [k for _, k in expected]
        for item, (position, _) in zip(items, expected, strict=True):
            proba = predictions.proba[position]
            assert item["label"] == names[int(predictions.labels[position])]
            assert item["predicted"] == names[int(decide(proba[None], row.covid_threshold)[0])] != item["label"]
            assert item["covid_probability"] == pytest.approx(proba[0], abs=1e-6)
            assert item["probabilities"] == pytest.approx(dict(zip(names, proba.tolist(), strict=True)), abs=1e-6)
        artifacts = {a.artifact_id: a for a in row.artifacts if a.kind == "mistake"}
        assert sorted(artifacts) == sorted(str(it["artifact_id"]) for it in items)
        for item in items:
            picture = Image.open(workdir / "artifacts" / str(item["artifact_id"]))
            assert picture.format == "PNG" and picture.size == (64, 64)
            assert artifacts[str(item["artifact_id"])].filename.startswith("mistake-")
        found.append((row.trial_number, items))
    return found


@pytest.mark.slow
def test_a_trial_stores_its_mistakes_at_its_threshold(one_split: Path, data: Path) -> None:

    from search._records import load_models, study_info
    from search._trial import TrialData
    from search.backbones import get_backbone
    from search.gradcam import gradcam, gradcam_layer_of, overlay
    from search.metrics import COVID_LABEL
    from search.space import TrialConfig

    found = _check_trials(one_split, "val")
    manifest = scan(data)
    assert all(
        item["path"] == manifest.entries[int(str(item["entry"]))].path for _, items in found for item in items
    ), "paths are the manifest's, relative to the dataset root"
    # The overlay is the trial's own model's COVID Grad-CAM on that very image.
    store = ResultStore(f"sqlite:///{one_split / 'optuna.db'}")
    number, items = found[0]
    row = next(r for r in store.trials("cxr-search") if r.trial_number == number)
    url = f"sqlite:///{one_split / 'optuna.db'}"
    model = load_models(row, study_info(url, "cxr-search"))[0]
    config = TrialConfig.from_json(row.config_json)
    trial_data = TrialData(manifest)
    entries = np.array([int(str(it["entry"])) for it in items])
    images = np.asarray(trial_data.inputs(config).images[entries], dtype=np.float32)
    heat = gradcam(model, gradcam_layer_of(model, get_backbone(config.backbone).gradcam_layer), images, COVID_LABEL)
    originals = np.asarray(trial_data.arrays(config.image_size, config.crop).images)
    heat = to_original(heat, trial_data.boxes(config)[entries], originals.shape[1:3])
    blank = 0
    for k, item in enumerate(items):
        stored = np.asarray(Image.open(one_split / "artifacts" / str(item["artifact_id"])).convert("RGB"), dtype=int)
        expected = overlay(originals[entries[k]], heat[k]).astype(int)
        assert np.abs(stored - expected).max() <= 2, f"mistake {k} is the trial's Grad-CAM on {item['path']}"
        blank += int(np.ptp(stored.std(axis=(0, 1))) == 0)
    assert blank < len(items), "at 64 px some overlays show a heatmap"


@pytest.mark.slow
def test_a_cross_validated_trial_stores_its_out_of_fold_mistakes(folded: Path) -> None:
    (_, items), *_ = _check_trials(folded, "oof")
    assert len(items) == MISTAKES


@pytest.mark.slow
def test_the_leaderboard_shows_them_and_counts_the_rest(one_split: Path, folded: Path, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from leaderboard.mistakes import MISTAKE_COLUMNS, mistake_overlays, mistake_summary, mistakes_frame

    url = f"sqlite:///{one_split / 'optuna.db'}"
    row = next(r for r in ResultStore(url).trials("cxr-search") if r.state == "COMPLETE")
    frame = mistakes_frame(url, "cxr-search", row.trial_number)
    assert list(frame.columns) == [*MISTAKE_COLUMNS, "what"] and len(frame) == MISTAKES
    assert frame.attrs["problems"] == []
    images, problems = mistake_overlays(url, "cxr-search", frame)
    assert problems == [] and all(Image.open(io.BytesIO(b or b"")).format == "PNG" for b in images)
    summary = mistake_summary(url, "cxr-search", row.trial_number)
    assert summary is not None and summary.images == "validation"
    assert summary.text == f"{MISTAKES} of {summary.misclassified} misclassified validation images shown"
    assert summary.confusion.to_numpy().sum() == summary.n and summary.threshold == row.covid_threshold
    assert mistakes_frame(url, "cxr-search", 999).empty and mistake_summary(url, "cxr-search", 999) is None
    folded_summary = mistake_summary(f"sqlite:///{folded / 'optuna.db'}", "cxr-search", 0)
    assert folded_summary is not None and "misclassified out-of-fold images shown" in folded_summary.text
    # Artifact ids come from the database: a traversal is refused in one sentence, the rest still shows.
    copy = tmp_path / "copy.db"
    shutil.copy(one_split / "optuna.db", copy)
    items = json.loads(row.mistakes_json or "[]")
    items[0]["artifact_id"] = "../optuna.db"
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE cxr_trials SET mistakes_json = :j WHERE id = :i"), {"j": json.dumps(items), "i": row.id}
        )
    engine.dispose()
    frame = mistakes_frame(f"sqlite:///{copy}", "cxr-search", row.trial_number)
    images, problems = mistake_overlays(f"sqlite:///{copy}", "cxr-search", frame)
    assert images[0] is None and all(b is not None for b in images[1:])
    assert problems == ["An artifact id must be a bare file name, but got '../optuna.db'."]
