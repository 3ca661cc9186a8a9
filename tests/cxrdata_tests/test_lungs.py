"""The lung segmenter: pairs, held-out split by patient, Dice, training, and its use in a search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image

from cxrdata import DatasetError, decode_image, decode_mask
from cxrdata.lungs import (
    MaskPairs,
    dice,
    held_out,
    load_pairs,
    load_segmenter,
    main,
    packaged_segmenter,
    segment,
    segmenter_card,
)
from tests.conftest import LUNG_MASKS


@pytest.fixture(scope="module")
def pairs() -> MaskPairs:
    return load_pairs(LUNG_MASKS, 48)


def test_pairs_skip_empty_masks_and_keep_patients_apart(pairs: MaskPairs) -> None:
    assert pairs.images.shape[1:] == (48, 48, 1) and pairs.masks.shape == pairs.images.shape
    assert set(pairs.skipped.values()) == {"empty mask"} and len(pairs.skipped) == 24
    assert len(pairs.names) == 451 - 24
    assert all(m.any() for m in pairs.masks)
    train, test = held_out(pairs)
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(pairs.names)
    assert {pairs.patients[i] for i in train}.isdisjoint({pairs.patients[i] for i in test})


def test_dice_by_hand() -> None:
    a = np.zeros((3, 4, 4), bool)
    b = np.zeros((3, 4, 4), bool)
    a[0, :2], b[0, :2] = True, True  # identical
    a[1, :2], b[1, 1:3] = True, True  # half overlap: 2*4 / (8+8)
    np.testing.assert_allclose(dice(a, b), [1.0, 0.5, 1.0])  # both empty counts as agreement


def test_a_trained_segmenter_finds_the_lungs_of_held_out_patients(pairs: MaskPairs, segmenter: Path) -> None:
    model = keras.models.load_model(segmenter, safe_mode=True, compile=False)
    _, test = held_out(pairs)
    rgb = np.repeat(pairs.images[test], 3, axis=-1)
    scores = dice(segment(model, rgb), pairs.masks[test][..., 0])
    assert scores.mean() > 0.75  # the 128 px, 40-epoch model in docs/benchmarks.md reaches more


def test_the_dice_command_reports_held_out_patients(segmenter: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dice", "--masks", str(LUNG_MASKS), "--model", str(segmenter)]) == 0
    out = capsys.readouterr().out
    assert "skipped 24 pair(s): 24 empty mask" in out
    assert "held-out Dice over" in out


def test_bad_mask_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(
        DatasetError, match=r"The mask folder must hold images/ and masks/ sub-folders, but '.*' does not\."
    ):
        load_pairs(tmp_path, 32)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 90).save(tmp_path / "images" / f"{i}.png")
        Image.new("L", (8, 8), 255).save(tmp_path / "masks" / f"{i}.png")
    with pytest.raises(
        DatasetError, match=r"Training a lung segmenter needs at least 10 image/mask pairs, but '.*' has 3\."
    ):
        load_pairs(tmp_path, 32)
    assert main(["train", "--masks", str(tmp_path), "--out", str(tmp_path / "m.h5")]) == 1
    assert "`--out` must end in .keras, but got" in capsys.readouterr().err


# --- the packaged segmenter ------------------------------------------------------------------


def test_the_packaged_segmenter_outlines_held_out_real_x_rays(pairs: MaskPairs) -> None:
    """Real 256 px X-rays of patients it never trained on, against their human masks."""
    model = load_segmenter(packaged_segmenter())
    assert tuple(model.input.shape) == (None, 128, 128, 1)
    _, test = held_out(pairs)  # the split the packaged model was trained apart from
    names = [pairs.names[i] for i in test[::16]]  # six images, six patients
    images = np.stack([decode_image(LUNG_MASKS / "images" / n) for n in names])
    truth = np.stack([decode_mask(LUNG_MASKS / "masks" / n) for n in names])
    scores = dice(segment(model, images), truth)
    assert scores.shape == (6,) and (scores > 0.8).all(), dict(zip(names, scores.round(3), strict=True))


def test_the_packaged_segmenter_is_small_and_states_its_held_out_dice() -> None:
    path = packaged_segmenter()
    assert path.is_file() and path.stat().st_size < 3 * 2**20
    card = segmenter_card(path)
    assert card is not None and card["input"] == [128, 128, 1]
    held = card["held_out"]
    assert held["dice_mean"] >= 0.9 and held["images"] == 96 and held["patients"] == 51
    readme = (path.parent / "README.md").read_text()
    assert f"{held['dice_mean']:.3f}" in readme and card["command"].split(" --masks")[0] in readme
    assert "Not a medical device" in readme


def _classifier(path: Path) -> None:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(path)


def _two_channel_output(path: Path) -> None:
    inputs = keras.Input((32, 32, 1))
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)).save(path)


def _smaller_output(path: Path) -> None:
    inputs = keras.Input((32, 32, 1))
    keras.Model(inputs, keras.layers.Conv2D(1, 1)(keras.layers.MaxPooling2D()(inputs))).save(path)


def _text(path: Path) -> None:
    path.write_text("not a model")


def _zip_without_a_model(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", '{"class_name": "NoSuchLayer", "config": {}}')


RULE = "`--lung-model` must be a lung segmenter with input (S, S, 1) and output (S, S, 1)"
BAD_SEGMENTERS = [
    ("missing", None, "x.keras", "`--lung-model` must be an existing .keras file, but got '{path}'."),
    ("h5-suffix", _text, "x.h5", "`--lung-model` must be an existing .keras file, but got '{path}'."),
    ("not-keras", _text, "x.keras", RULE + " saved by Keras, but '{path}' is not a Keras model file."),
    (
        "bad-archive",
        _zip_without_a_model,
        "x.keras",
        RULE + " saved by Keras, but '{path}' could not be loaded as a Keras model.",
    ),
    ("classifier", _classifier, "x.keras", RULE + ", but '{path}' takes (32, 32, 3) and gives (3,)."),
    ("two-channels", _two_channel_output, "x.keras", RULE + ", but '{path}' takes (32, 32, 1) and gives (32, 32, 2)."),
    ("smaller-output", _smaller_output, "x.keras", RULE + ", but '{path}' takes (32, 32, 1) and gives (16, 16, 1)."),
]


@pytest.mark.parametrize(
    ("make", "name", "message"), [row[1:] for row in BAD_SEGMENTERS], ids=[row[0] for row in BAD_SEGMENTERS]
)
def test_a_file_that_is_not_a_lung_segmenter_gets_one_sentence(
    tmp_path: Path, make: Any, name: str, message: str
) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(DatasetError) as caught:
        load_segmenter(path)
    assert str(caught.value) == message.format(path=path)


def test_the_dice_command_names_its_own_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _classifier(tmp_path / "c.keras")
    assert main(["dice", "--masks", str(LUNG_MASKS), "--model", str(tmp_path / "c.keras")]) == 1
    assert capsys.readouterr().err.startswith("error: `--model` must be a lung segmenter with input (S, S, 1)")
