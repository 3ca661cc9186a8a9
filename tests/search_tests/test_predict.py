"""``search.predict`` on a hand-made exported folder: malformed cards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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
