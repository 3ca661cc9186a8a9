from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrdata import find_duplicates, get_scheme, leak_report, make_split, scan


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.7, 0.3), r"`fractions` must be three numbers \(train, val, test\), but got \(0.7, 0.3\)\."),
        ((0.0, 0.9, 0.1), r"`train > 0, val > 0 and test >= 0` must hold, but got \(train=0.0, val=0.9, test=0.1\)\."),
        ((0.9, 0.0, 0.1), r"`train > 0, val > 0 and test >= 0` must hold, but got \(train=0.9, val=0.0, test=0.1\)\."),
        ((0.8, 0.3, -0.1), r"`train > 0, val > 0 and test >= 0` must hold"),
        ((0.7, 0.2, 0.2), r"`train \+ val \+ test == 1` must hold, but got 0.7 \+ 0.2 \+ 0.2 = 1.1"),
    ],
)
def test_bad_fractions(synthetic: Path, fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_split(scan(synthetic), get_scheme("three"), fractions=fractions)


def test_split_is_stratified_deterministic_and_grouped_by_patient(synthetic: Path) -> None:
    m = scan(synthetic)
    a = make_split(m, get_scheme("three"), seed=3)
    b = make_split(m, get_scheme("three"), seed=3)
    c = make_split(m, get_scheme("three"), seed=4)
    assert a.fingerprint == b.fingerprint
    assert all(np.array_equal(a.indices[k], b.indices[k]) for k in a.indices)
    assert a.fingerprint != c.fingerprint
    all_idx = np.concatenate(list(a.indices.values()))
    assert sorted(all_idx.tolist()) == list(range(len(m.entries)))
    # 12 images per class in 6 patients of 2: the patient pairs keep train near 70%.
    for cls_counts in zip(*(a.counts()[s].values() for s in ("train", "val", "test")), strict=True):
        assert cls_counts[0] >= 6 and cls_counts[1] >= 2
    side = a.side_of()
    for patient in {e.patient_id for e in m.entries}:
        assert len({side[i] for i, e in enumerate(m.entries) if e.patient_id == patient}) == 1
    assert not leak_report(m, a).leaks


def test_binary_labels_pool_the_other_classes(synthetic: Path) -> None:
    m = scan(synthetic)
    split = make_split(m, get_scheme("binary"))
    assert np.bincount(split.labels).tolist() == [12, 24]
    assert sum(split.counts()[s]["Non-COVID"] for s in ("train", "val", "test")) == 24


def _copy_resized_jpeg(src: Path, dst: Path, size: int) -> None:
    buffer = io.BytesIO()
    Image.open(src).convert("L").resize((size, size)).save(buffer, "JPEG", quality=75)
    dst.write_bytes(buffer.getvalue())


def test_duplicates_are_found_and_kept_on_one_side(synthetic: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic, root)
    (root / "metadata.csv").unlink()  # no patients: only the duplicates tie images together
    images = root / "Normal" / "images"
    shutil.copy(images / "Normal-1.png", images / "Normal-exact.png")
    _copy_resized_jpeg(images / "Normal-2.png", images / "Normal-resized.jpg", 80)
    # The same image filed under another class: a label conflict the report must show.
    _copy_resized_jpeg(images / "Normal-3.png", root / "COVID" / "images" / "COVID-copy.jpg", 40)
    m = scan(root)
    groups = find_duplicates(m.entries)
    found = {tuple(sorted(m.entries[i].path.split("/")[-1] for i in g.members)): g.kind for g in groups}
    assert found == {
        ("Normal-1.png", "Normal-exact.png"): "exact",
        ("Normal-2.png", "Normal-resized.jpg"): "near",
        ("COVID-copy.jpg", "Normal-3.png"): "near",
    }
    for seed in range(5):
        split = make_split(m, get_scheme("three"), seed=seed, duplicates=groups)
        report = leak_report(m, split)
        assert report.cross_split_duplicates == ()
        assert report.duplicate_groups == 3
        assert len(report.conflicting_labels) == 1


def test_distinct_synthetic_images_are_not_duplicates(synthetic: Path) -> None:
    assert find_duplicates(scan(synthetic).entries) == []


def test_bad_threshold() -> None:
    with pytest.raises(ValueError, match=r"`0 <= max_bits <= 64` must hold, but got max_bits=70\."):
        find_duplicates([], max_bits=70)


def test_folds_cover_train_and_validation_once_and_keep_groups_whole(synthetic: Path) -> None:
    from cxrdata import get_scheme, make_folds, make_split, scan

    manifest = scan(synthetic)
    split = make_split(manifest, get_scheme("three"), seed=3)
    folds = make_folds(manifest, split, 4)
    pooled = np.sort(np.concatenate(folds))
    assert np.array_equal(pooled, np.sort(np.concatenate([split.indices["train"], split.indices["val"]])))
    assert not set(pooled) & set(split.indices["test"].tolist()), "the test split stays out of every fold"
    fold_of = {int(i): f for f, fold in enumerate(folds) for i in fold}
    patients: dict[str, set[int]] = {}
    for i in pooled:
        patient = manifest.entries[int(i)].patient_id
        if patient:
            patients.setdefault(patient, set()).add(fold_of[int(i)])
    assert patients and all(len(f) == 1 for f in patients.values()), "a patient never spans two folds"
    for fold in folds:  # stratified: every fold holds every class
        assert set(split.labels[fold].tolist()) == {0, 1, 2}
    assert [f.tolist() for f in make_folds(manifest, split, 4)] == [f.tolist() for f in folds], "deterministic"


@pytest.mark.parametrize("k", [1, 0, -2])
def test_fewer_than_two_folds_are_refused(synthetic: Path, k: int) -> None:
    from cxrdata import get_scheme, make_folds, make_split, scan

    manifest = scan(synthetic)
    split = make_split(manifest, get_scheme("three"))
    with pytest.raises(ValueError, match=rf"`k >= 2` must hold for cross-validation folds, but got k={k}\."):
        make_folds(manifest, split, k)
