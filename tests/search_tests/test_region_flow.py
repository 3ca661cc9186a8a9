"""A lung region from the command line to a served prediction: search, export, predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from search.store import ResultStore
from tests.conftest import launch, run_module

pytestmark = pytest.mark.slow  # trains

BASE = ("--weights", "none", "--image-size", "32", "--max-epochs", "2", "--backbones", "MobileNet_0.25")


@pytest.fixture(scope="module")
def region_search(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("regions")
    done = launch("--trials", "3", "--data", str(tiny), "--regions", "lung_crop,lung_mask", *BASE, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_every_completed_trial_of_a_region_search_has_lung_focus(region_search: Path) -> None:
    store = ResultStore(f"sqlite:///{region_search / 'optuna.db'}")
    rows = [r for r in store.trials("cxr-search") if r.state == "COMPLETE"]
    assert rows
    assert {json.loads(r.config_json)["input_region"] for r in rows} <= {"lung_crop", "lung_mask"}
    # At 32 px the backbone's last map is 1x1, so a heatmap may be blank: measured, and counted as such.
    assert all(r.lung_focus_n and r.lung_mask_source == "dataset" for r in rows)


def test_the_exported_region_model_ships_its_segmenter_and_predicts_raw_x_rays(
    region_search: Path, tiny: Path, tmp_path: Path
) -> None:
    out = tmp_path / "winner"
    done = run_module("search.export", "--study", "cxr-search", "--out", str(out), "--ensemble", "1",
                      "--formats", "keras", cwd=region_search)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((out / "model_card.json").read_text())
    assert card["input"]["region"] in ("lung_crop", "lung_mask")
    assert card["files"]["segmenter"] == "lung_segmenter.keras" and (out / "lung_segmenter.keras").is_file()
    assert "segment the lungs with `lung_segmenter.keras`" in (out / "MODEL_CARD.md").read_text()
    raw = next(iter(sorted((tiny / "COVID" / "images").glob("*.png"))))
    shutil.copy(raw, tmp_path / "x-ray.png")
    done = run_module("search.predict", "--model", str(out), str(tmp_path / "x-ray.png"), cwd=region_search)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert 0.0 <= line["covid_probability"] <= 1.0


def test_a_region_without_any_masks_is_refused_before_a_trial(tiny: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny, bare)
    for masks in bare.glob("*/masks"):
        shutil.rmtree(masks)
    done = launch("--trials", "1", "--data", str(bare), "--regions", "lung_crop", "--lung-model", "none", *BASE,
                  cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: The input regions lung_crop need lung masks, but the dataset has none and --lung-model is none; "
        "leave --lung-model at auto (the packaged segmenter), pass a segmenter file, or search `full` only."
    )
    assert not (tmp_path / "optuna.db").exists() or "Trial" not in done.stdout


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ("lung", "error: `regions` must be among full, lung_crop, lung_mask, lung_crop_mask, but got 'lung'."),
        ("full,crop", "error: `regions` must be among full, lung_crop, lung_mask, lung_crop_mask, but got 'crop'."),
    ],
)
def test_an_unknown_region_is_one_sentence(tiny: Path, tmp_path: Path, regions: str, message: str) -> None:
    done = launch("--trials", "1", "--data", str(tiny), "--regions", regions, *BASE, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(message)
