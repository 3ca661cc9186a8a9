"""Input regions: the lungs' box, the lungs alone, and heatmaps put back where they came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrdata import (
    REGIONS,
    DatasetError,
    apply_region,
    cached_region,
    check_region,
    hide_lungs,
    lung_box,
    to_original,
)


def _lungs(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[20:40, 10:24] = True  # right lung
    mask[20:44, 36:50] = True  # left lung
    return mask


def _images(n: int = 2, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(1, 255, (n, size, size, 3), dtype=np.uint8)  # no black pixel


def test_the_box_holds_the_lungs_and_the_margin() -> None:
    assert lung_box(_lungs(), margin=0.0) == (20, 44, 10, 50)
    assert lung_box(_lungs(), margin=0.05) == (17, 47, 7, 53)  # 0.05 * 64 = 3 px each side


def test_the_box_stays_inside_the_image_and_an_empty_mask_gives_the_whole_image() -> None:
    edge = np.zeros((64, 64), bool)
    edge[0:10, 60:64] = True
    assert lung_box(edge, margin=0.1) == (0, 16, 54, 64)
    assert lung_box(np.zeros((64, 48), bool)) == (0, 64, 0, 48)


def test_full_passes_the_images_unchanged() -> None:
    images = _images()
    cut = apply_region(images, np.stack([_lungs()] * 2), np.ones(2, bool), "full")
    assert np.array_equal(cut.images, images)
    assert cut.boxes.tolist() == [[0, 64, 0, 64]] * 2


def test_lung_mask_blacks_out_only_what_lies_outside_the_grown_lungs() -> None:
    images, lungs = _images(), _lungs()
    cut = apply_region(images, np.stack([lungs] * 2), np.array([True, False]), "lung_mask", margin=0.05)
    black = (cut.images[0] == 0).all(axis=-1)
    assert not black[lungs].any(), "no lung pixel is lost"
    assert black[0, 0] and black[63, 63], "the corners are gone"
    assert np.array_equal(cut.images[0][~black], images[0][~black])
    assert np.array_equal(cut.images[1], images[1]), "an image without a mask is seen whole"
    assert cut.boxes[0].tolist() == [0, 64, 0, 64], "lung_mask keeps the image's coordinates"


def test_hiding_the_lungs_blacks_out_what_lung_mask_keeps() -> None:
    images, lungs = _images(), _lungs()
    masks, available = np.stack([lungs] * 2), np.array([True, False])
    hidden = hide_lungs(images, masks, available, margin=0.05)
    kept = apply_region(images, masks, available, "lung_mask", margin=0.05).images
    black = (hidden[0] == 0).all(axis=-1)
    assert black[lungs].all(), "every lung pixel is hidden"
    assert np.array_equal(black, (kept[0] != 0).any(axis=-1)), "hidden exactly where lung_mask shows the image"
    assert np.array_equal(hidden[0][~black], images[0][~black])
    assert np.array_equal(hidden[1], images[1]), "an image without a mask is left whole"
    assert hidden is not images and images.min() > 0, "the input is not changed"


def test_lung_crop_shows_the_box_at_full_size_and_moves_the_mask_with_it() -> None:
    images = np.zeros((1, 64, 64, 3), np.uint8)
    images[0, 17:47, 7:53] = 200  # exactly the box: the crop must be all 200
    cut = apply_region(images, _lungs()[None], np.ones(1, bool), "lung_crop", margin=0.05)
    assert cut.boxes[0].tolist() == [17, 47, 7, 53]
    assert cut.images.shape == images.shape and (cut.images == 200).all()
    assert 0.4 < cut.masks.mean() < 0.8, "the lungs fill much more of the crop than of the image"


def test_lung_crop_mask_blacks_out_around_the_lungs_then_fills_the_input_with_their_box() -> None:
    images, lungs = _images(1), _lungs()
    masked = apply_region(images, lungs[None], np.ones(1, bool), "lung_mask", margin=0.05)
    cut = apply_region(images, lungs[None], np.ones(1, bool), "lung_crop_mask", margin=0.05)
    assert cut.boxes[0].tolist() == [17, 47, 7, 53], "the same box as lung_crop"
    boxed = apply_region(masked.images, lungs[None], np.ones(1, bool), "lung_crop", margin=0.05)
    assert np.array_equal(cut.images, boxed.images), "lung_mask's pixels, cut as lung_crop cuts them"
    black = (cut.images[0] == 0).all(axis=-1).mean()
    assert 0.0 < black < (masked.images[0] == 0).all(axis=-1).mean(), "less of the input is blank than with lung_mask"
    back = to_original(cut.masks[..., 0].astype(np.float32), cut.boxes, (64, 64))[0]
    assert back[lungs].sum() / back.sum() > 0.85


def test_a_heatmap_goes_back_into_its_box() -> None:
    heat = np.ones((1, 8, 8), np.float32)
    back = to_original(heat, np.array([[17, 47, 7, 53]]), (64, 64))
    assert back.shape == (1, 64, 64)
    assert back[0, 17:47, 7:53].min() == pytest.approx(1.0) and back.sum() == pytest.approx(30 * 46)


def test_a_crop_and_back_measures_focus_in_the_original_coordinates() -> None:
    """A heatmap that is hot where the lungs are in the crop is hot on the lungs in the image."""
    lungs = _lungs()
    cut = apply_region(_images(1), lungs[None], np.ones(1, bool), "lung_crop")
    back = to_original(cut.masks[..., 0].astype(np.float32), cut.boxes, (64, 64))[0]
    inside = back[lungs].sum() / back.sum()
    assert inside > 0.85


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (
            "lung",
            "`input_region` must be one of full, lung_crop, lung_mask, lung_crop_mask, but got 'lung'. Did you mean",
        ),
        ("crop", "`input_region` must be one of full, lung_crop, lung_mask, lung_crop_mask, but got 'crop'."),
        ("", "`input_region` must be one of full, lung_crop, lung_mask, lung_crop_mask, but got ''."),
    ],
)
def test_an_unknown_region_is_one_sentence(region: str, message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        check_region(region)
    assert str(caught.value).startswith(message)


def test_every_region_is_accepted() -> None:
    assert [check_region(r) for r in REGIONS] == ["full", "lung_crop", "lung_mask", "lung_crop_mask"]


def test_a_cached_region_is_written_once_and_mapped_after(tmp_path: Path) -> None:
    images, lungs = _images(), np.stack([_lungs()] * 2)
    folder = tmp_path / "region-x"
    first = cached_region(images, lungs, np.ones(2, bool), "lung_crop", folder)
    assert (folder / "images.npy").is_file()
    again = cached_region(np.zeros_like(images), lungs, np.ones(2, bool), "lung_crop", folder)
    assert isinstance(again.images, np.memmap), "read from disk, not cut again"
    assert np.array_equal(again.images, first.images) and np.array_equal(again.boxes, first.boxes)
    fresh = apply_region(images, lungs, np.ones(2, bool), "lung_crop")
    assert np.array_equal(fresh.images, first.images) and np.array_equal(fresh.masks, first.masks)


def test_workers_starting_together_cut_a_region_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import cxrdata._region

    images, lungs = _images(), np.stack([_lungs()] * 2)
    cuts: list[str] = []
    real = cxrdata._region.apply_region

    def slow(*args: object, **kwargs: object) -> object:
        cuts.append("cut")
        time.sleep(0.3)  # long enough for the other workers to be waiting
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cxrdata._region, "apply_region", slow)
    seen: list[np.ndarray] = []
    threads = [
        threading.Thread(
            target=lambda: seen.append(
                np.asarray(cached_region(images, lungs, np.ones(2, bool), "lung_crop", tmp_path / "r").images)
            )
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cuts == ["cut"] and len(seen) == 3
    assert all(np.array_equal(s, seen[0]) for s in seen)
