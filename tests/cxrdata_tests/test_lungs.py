"""The lung segmenter: pairs, held-out split by patient, Dice, training, and its use in a search."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cxrdata import DatasetError
from cxrdata.lungs import MaskPairs, dice, held_out, load_pairs, main, segment
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
