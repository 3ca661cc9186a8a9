from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrdata import get_scheme, load_images, make_split, scan
from cxrdata._images import ImageArrays
from cxrdata._pipeline import check_strength, make_dataset


def test_images_decode_once_and_the_cache_is_shared(synthetic: Path, tmp_path: Path) -> None:
    m = scan(synthetic)
    fresh = load_images(m, 32)
    cached = load_images(m, 32, cache_dir=tmp_path)
    again = load_images(m, 32, cache_dir=tmp_path)
    assert fresh.images.shape == (36, 32, 32, 3)
    assert np.array_equal(fresh.images, cached.images)
    assert isinstance(again.images, np.memmap), "a second load must map the cache, not decode again"
    assert len(list(tmp_path.glob("images-*"))) == 1
    assert fresh.has_mask.all() and fresh.valid.all()
    assert 0.1 < fresh.masks.mean() < 0.5
    load_images(m, 24, cache_dir=tmp_path)
    load_images(m, 32, crop=0.1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("images-*"))) == 3, "size and crop are part of the key"


def test_a_file_that_breaks_after_the_scan_is_left_out(synthetic: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic, root)
    m = scan(root)
    (root / m.entries[0].path).write_bytes(b"")
    arrays = load_images(m, 32)
    assert not arrays.valid[0] and arrays.valid[1:].all()
    assert arrays.failures == [(m.entries[0].path, "empty file (0 bytes)")]
    split = make_split(m, get_scheme("three"))
    every = np.arange(len(m.entries))
    seen = sum(int(x.shape[0]) for x, _ in make_dataset(arrays, every, split.labels, batch_size=8))
    assert seen == len(m.entries) - 1


def test_crop_removes_the_border(tmp_path: Path) -> None:
    from PIL import Image

    from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset

    root = make_synthetic_dataset(tmp_path, SyntheticSpec(per_class=1, size=40, marker_class="COVID", masks=False))
    m = scan(root)
    covid = next(i for i, e in enumerate(m.entries) if e.label == "COVID")
    marker = np.asarray(Image.open(root / m.entries[covid].path))[1:5, 1:5]
    assert marker.min() == 255
    cropped = load_images(m, 40, crop=0.15).images[covid]
    assert cropped[:4, :4].max() < 255, "the corner marker must be cut away"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 8}, r"`16 <= image_size <= 2048` must hold for a whole number of pixels, but got 8\."),
        ({"image_size": 64.0}, r"but got 64.0\."),
        (
            {"image_size": 32, "crop": 0.5},
            r"`0 <= crop < 0.5` must hold \(the fraction cut from each side\), but got crop=0.5\.",
        ),
    ],
)
def test_bad_image_arguments(synthetic: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_images(scan(synthetic), **kwargs)  # type: ignore[arg-type]


def test_bad_strength() -> None:
    with pytest.raises(ValueError, match=r"`0 <= augment_strength <= 1` must hold, but got augment_strength=1.5\."):
        check_strength(1.5)


def _arrays(synthetic: Path) -> tuple[ImageArrays, np.ndarray]:
    m = scan(synthetic)
    return load_images(m, 32), make_split(m, get_scheme("three")).labels


def test_strength_zero_passes_images_through(synthetic: Path) -> None:
    arrays, labels = _arrays(synthetic)
    idx = np.arange(10)
    x, y = next(iter(make_dataset(arrays, idx, labels, batch_size=10)))
    assert np.array_equal(x.numpy(), arrays.images[:10].astype(np.float32))
    assert np.array_equal(y.numpy(), labels[:10])


def test_mask_gets_the_same_random_transform_as_its_image(synthetic: Path) -> None:
    arrays, labels = _arrays(synthetic)
    # Make every image a picture of its own mask: after augmentation, image and mask must agree.
    images = np.repeat(arrays.masks * 255, 3, axis=3).astype(np.uint8)
    probe = ImageArrays(images, arrays.masks, arrays.has_mask, arrays.valid)
    idx = np.arange(len(labels))
    batches = list(make_dataset(probe, idx, labels, batch_size=12, augment_strength=1.0, with_masks=True, seed=5))
    x = np.concatenate([b[0].numpy() for b in batches])
    mask = np.concatenate([b[2].numpy() for b in batches])
    moved = np.abs(x[..., :1] / 255.0 - probe.masks.astype(np.float32)).mean()
    assert moved > 0.01, "strength 1 must move the images"
    agree = ((x[..., :1] > 127.5) == (mask > 0.5)).mean()
    assert agree > 0.995


def test_shuffle_is_seeded_and_changes_each_epoch(synthetic: Path) -> None:
    arrays, labels = _arrays(synthetic)
    idx = np.arange(len(labels))

    def order(seed: int) -> list[list[int]]:
        data = make_dataset(arrays, idx, labels, batch_size=36, shuffle=True, seed=seed)
        return [
            np.asarray(x.numpy()).reshape(36, -1).sum(axis=1).astype(int).tolist() for _ in range(2) for x, _ in data
        ]

    first, again, other = order(1), order(1), order(2)
    assert first == again
    assert first != other
    assert first[0] != first[1], "each epoch reshuffles"


def test_strength_scales_the_transform(synthetic: Path) -> None:
    arrays, labels = _arrays(synthetic)
    idx = np.arange(len(labels))

    def moved(strength: float) -> float:
        data = make_dataset(arrays, idx, labels, batch_size=36, augment_strength=strength, seed=2)
        x = next(iter(data))[0].numpy()
        return float(np.abs(x - arrays.images.astype(np.float32)).mean())

    small, full = moved(0.1), moved(1.0)
    assert 0 < small < full
