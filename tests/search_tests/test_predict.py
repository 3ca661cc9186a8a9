"""``search.predict`` on a hand-made exported folder: batches, overlay names and malformed cards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from search import SearchError
from search.predict import Predictor
from search.predict import main as predict_main

CLASSES = ["COVID", "Normal", "Viral Pneumonia"]


def _card(**changes: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "kind": "single",
        "files": {"keras": "model.keras"},
        "classes": CLASSES,
        "covid_class_index": 0,
        "input": {"size": 32, "channels": "RGB", "dtype": "float32", "range": [0, 255], "crop_fraction_per_side": 0.0},
        "decision": {"rule": "COVID when its probability >= 0.5", "threshold": 0.5, "target": None},
        "gradcam_layer": "conv",
        "gradcam": {"members": [["conv", 1.0]]},
    }
    return card | changes


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported folder in miniature: a small flat model with the layer names Grad-CAM reads, and its card."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = keras.layers.Softmax()(keras.layers.Dense(3, name="head_logits")(x))
    folder = tmp_path_factory.mktemp("model")
    keras.Model(inputs, outputs).save(folder / "model.keras")
    (folder / "model_card.json").write_text(json.dumps(_card()))
    return folder


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return Predictor(model_dir)


def _image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _proba(lines: list[dict[str, Any]]) -> list[list[float] | None]:
    return [[line["probabilities"][c] for c in CLASSES] if "probabilities" in line else None for line in lines]


def test_batches_give_the_same_lines_as_one_batch(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [_image(tmp_path / f"x{i}.png", i) for i in range(5)]
    paths.insert(3, tmp_path / "missing.png")  # an unreadable file between batches keeps its place
    whole = list(predictor.predict(paths, batch_size=32))
    seen: list[int] = []
    predict = predictor.model.predict

    def counting(images: np.ndarray, **kwargs: Any) -> Any:
        seen.append(len(images))
        return predict(images, **kwargs)

    monkeypatch.setattr(predictor.model, "predict", counting)
    batched = list(predictor.predict(paths, batch_size=2))
    assert seen == [2, 1, 2], "never more than two images at a time"
    assert [line["path"] for line in batched] == [str(p) for p in paths]
    assert [line.get("error") for line in batched] == [line.get("error") for line in whole]
    np.testing.assert_allclose(
        np.array([p for p in _proba(batched) if p is not None]),
        np.array([p for p in _proba(whole) if p is not None]),
        atol=2e-6,
    )
    assert [line.get("prediction") for line in batched] == [line.get("prediction") for line in whole]


def test_lines_come_batch_by_batch(predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [_image(tmp_path / f"x{i}.png", i) for i in range(5)]
    read: list[Path] = []
    prepare = predictor.prepare

    def counting(path: Path) -> np.ndarray:
        read.append(path)
        return prepare(path)

    monkeypatch.setattr(predictor, "prepare", counting)
    lines = predictor.predict(paths, batch_size=2)
    next(lines)
    assert read == paths[:2], "the first line comes before the rest are read"


def test_the_batch_size_must_be_positive(
    predictor: Predictor, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SearchError, match=r"^`batch_size >= 1` must hold, but got 0\.$"):
        next(predictor.predict([model_dir / "x.png"], batch_size=0))
    with pytest.raises(SystemExit):
        predict_main(["--model", str(model_dir), "--batch-size", "0", "x.png"])
    assert "`--batch-size >= 1` must hold, but got '0'" in capsys.readouterr().err


def test_inputs_with_the_same_file_name_keep_their_own_overlays(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [
        _image(tmp_path / "a" / "img.png", 1),
        _image(tmp_path / "b" / "img.png", 2),
        _image(tmp_path / "c" / "img-2.png", 3),  # the name a numbered overlay would take
        _image(tmp_path / "d" / "IMG.png", 4),  # the same name to a case-insensitive file system
    ]
    cams = tmp_path / "cams"
    args = ["--model", str(model_dir), *map(str, paths), "--gradcam", str(cams)]
    assert predict_main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in paths], "each line names its input"
    names = [Path(line["gradcam"]).name for line in lines]
    assert names == ["img.gradcam.png", "img-2.gradcam.png", "img-2-2.gradcam.png", "IMG-3.gradcam.png"]
    assert sorted(p.name for p in cams.iterdir()) == sorted(names)
    overlays = [np.asarray(Image.open(line["gradcam"])) for line in lines]
    assert not np.array_equal(overlays[0], overlays[1]), "a/img.png and b/img.png each have their own"
    assert predict_main(args) == 0
    again = [json.loads(line)["gradcam"] for line in capsys.readouterr().out.splitlines()]
    assert again == [line["gradcam"] for line in lines], "the same command gives the same names"


def test_a_file_that_is_not_png_or_jpeg_is_refused(predictor: Predictor, tmp_path: Path) -> None:
    bmp = tmp_path / "scan.png"
    Image.new("RGB", (40, 40)).save(bmp, format="BMP")  # cxrdata's decoding decides, whatever the suffix says
    [line] = predictor.predict([bmp])
    assert line["error"].startswith("not a readable image: ") and "probabilities" not in line


def test_the_threshold_names_the_covid_class_wherever_it_is(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    card = _card(classes=["Normal", "COVID", "Viral Pneumonia"], covid_class_index=1)
    card["decision"] = {"rule": "", "threshold": 1e-9, "target": None}
    (folder / "model_card.json").write_text(json.dumps(card))
    [line] = Predictor(folder).predict([_image(tmp_path / "x.png", 0)])
    assert line["covid"] is True and line["prediction"] == "COVID"


def test_predict_prints_one_sentence_for_a_malformed_card(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    (folder / "model_card.json").write_text("{")
    assert predict_main(["--model", str(folder), "x.png"]) == 1
    assert capsys.readouterr().err == (
        f"error: The model card '{folder / 'model_card.json'}' must be JSON, but it is not "
        "(Expecting property name enclosed in double quotes at line 1, column 2).\n"
    )


def test_the_card_names_one_class_per_output(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    (folder / "model_card.json").write_text(json.dumps(_card(classes=[*CLASSES, "Lung Opacity"])))
    with pytest.raises(SearchError) as info:
        Predictor(folder)
    assert str(info.value) == (
        f"The model card '{folder / 'model_card.json'}' must name one class per output of the model (3), "
        "but got 4 classes."
    )


def _without(*keys: str) -> Callable[[dict[str, Any]], Any]:
    def change(card: dict[str, Any]) -> Any:
        *parents, last = keys
        inner = card
        for key in parents:
            inner = inner[key]
        del inner[last]
        return card

    return change


def _setting(value: Any, *keys: str) -> Callable[[dict[str, Any]], Any]:
    def change(card: dict[str, Any]) -> Any:
        *parents, last = keys
        inner = card
        for key in parents:
            inner = inner[key]
        inner[last] = value
        return card

    return change


def _ensemble(members: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda card: card | {"kind": "ensemble", "gradcam": {"members": members}}


def _text(raw: bytes) -> Callable[[dict[str, Any]], Any]:
    return lambda card: raw


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_text(b'{"classes": ['), "be JSON, but it is not (Expecting value at line 1, column 14)."),
        (_text(b"\xff\xfe{}"), "be UTF-8 text, but byte 0 is not."),
        (_text(b"[1, 2]"), "be a JSON object, but got [1, 2]."),
        (_without("files"), "give `files.keras` as a file name, but it is missing."),
        (
            _setting("model.keras", "files"),
            'give `files.keras` as a file name, but `files` is "model.keras", not an object.',
        ),
        (_setting("COVID", "classes"), 'give `classes` as a list of at least two class names, but got "COVID".'),
        (_without("covid_class_index"), "give `covid_class_index` as a whole number, but it is missing."),
        (_setting(3, "covid_class_index"), "give `covid_class_index` as an index into `classes` (0 to 2), but got 3."),
        (
            _setting("32", "input", "size"),
            'give `input.size` as a whole number of pixels from 16 to 2048, but got "32".',
        ),
        (
            _setting(True, "input", "size"),
            "give `input.size` as a whole number of pixels from 16 to 2048, but got true.",
        ),
        (
            _setting(0.5, "input", "crop_fraction_per_side"),
            "give `input.crop_fraction_per_side` as a number with 0 <= crop < 0.5, but got 0.5.",
        ),
        (
            _without("decision"),
            "give `decision.threshold` as null or a number with 0 < threshold < 1, but it is missing.",
        ),
        (
            _setting(1.5, "decision", "threshold"),
            "give `decision.threshold` as null or a number with 0 < threshold < 1, but got 1.5.",
        ),
        (_setting("bag", "kind"), 'give `kind` as "single" or "ensemble", but got "bag".'),
        (_without("gradcam_layer"), "give `gradcam_layer` as a layer name, but it is missing."),
        (_ensemble([["conv"]]), 'give `gradcam.members` as a list of [layer name, weight] pairs, but got [["conv"]].'),
        (_ensemble([]), "give `gradcam.members` as a list of [layer name, weight] pairs, but got []."),
        (
            _setting("other.keras", "files", "keras"),
            "give `files.keras` as a file in '{folder}', but got \"other.keras\".",
        ),
        (
            _setting("../outside.keras", "files", "keras"),
            "give `files.keras` as a file in '{folder}', but got \"../outside.keras\".",
        ),
    ],
)
def test_a_malformed_card_is_one_sentence(
    model_dir: Path, tmp_path: Path, change: Callable[[dict[str, Any]], Any], problem: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    shutil.copy(model_dir / "model.keras", tmp_path / "outside.keras")  # a real model, but outside the folder
    changed = change(_card())
    path = folder / "model_card.json"
    path.write_bytes(changed if isinstance(changed, bytes) else json.dumps(changed).encode())
    with pytest.raises(SearchError) as info:
        Predictor(folder)
    assert str(info.value) == f"The model card '{path}' must {problem}".replace("{folder}", str(folder))


@pytest.fixture(scope="module")
def region_dir(model_dir: Path, segmenter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The miniature folder as export writes it for a ``lung_crop`` trial: with its segmenter."""
    folder = tmp_path_factory.mktemp("region") / "model"
    shutil.copytree(model_dir, folder)
    shutil.copy(segmenter, folder / "lung_segmenter.keras")
    card = _card(files={"keras": "model.keras", "segmenter": "lung_segmenter.keras"})
    card["input"] |= {"region": "lung_crop", "region_margin": 0.05}
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("region", ["lung_crop", "lung_crop_mask"])
def test_a_lung_region_model_sees_a_raw_x_ray_as_its_trial_did(
    region_dir: Path, segmenter: Path, tmp_path: Path, region: str
) -> None:
    """predict on raw files gives what the trial's own inputs (segmented, then cut) give."""
    import keras

    from cxrdata import scan
    from search._trial import TrialData
    from search.space import TrialConfig
    from tests.conftest import LUNG_MASKS, RADIOGRAPHY

    root = tmp_path / "raw"
    for source, label in ((LUNG_MASKS / "images", "COVID"), (RADIOGRAPHY / "Normal" / "images", "Normal")):
        (root / label).mkdir(parents=True)
        for path in sorted(source.glob("*.png"))[:3]:
            shutil.copy(path, root / label / path.name)
    manifest = scan(root)
    config = TrialConfig("MobileNet_0.25", 1.0, 8, 0.0, 1e-3, 0.0, "three", input_region=region, image_size=32)
    seen = TrialData(manifest, lung_model=segmenter).inputs(config)
    card = json.loads((region_dir / "model_card.json").read_text())
    region_dir = shutil.copytree(region_dir, tmp_path / "model")
    card["input"]["region"] = region
    (region_dir / "model_card.json").write_text(json.dumps(card))
    assert not np.array_equal(seen.images, TrialData(manifest).arrays(32, 0.0).images), "the region cut something"
    model = keras.models.load_model(region_dir / "model.keras")
    expected = model.predict(np.asarray(seen.images, np.float32), verbose=0)
    lines = list(Predictor(region_dir).predict(manifest.paths(), tmp_path / "cams"))
    assert np.allclose(np.array(_proba(lines), dtype=float), expected, atol=1e-5)
    overlay = Image.open(lines[0]["gradcam"])
    assert overlay.size == (32, 32), "the overlay shows the whole X-ray, not the crop"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"region": "lungs"},
            'give `input.region` as one of full, lung_crop, lung_mask, lung_crop_mask, but got "lungs".',
        ),
        (
            {"region": "lung_mask"},
            "give `files.segmenter` as a file in '{folder}' for input.region=lung_mask, but got ",
        ),
    ],
)
def test_a_region_without_its_segmenter_is_one_sentence(
    model_dir: Path, tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    card = _card()
    card["input"] |= change
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(SearchError) as info:
        Predictor(folder)
    path = folder / "model_card.json"
    assert str(info.value).startswith(f"The model card '{path}' must {problem}".replace("{folder}", str(folder)))


def test_a_segmenter_that_is_not_one_is_refused(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    shutil.copy(model_dir / "model.keras", folder / "lung_segmenter.keras")  # a classifier, not a segmenter
    card = _card(files={"keras": "model.keras", "segmenter": "lung_segmenter.keras"})
    card["input"] |= {"region": "lung_crop"}
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(SearchError, match=r"^`files.segmenter` must be a lung segmenter"):
        Predictor(folder)
