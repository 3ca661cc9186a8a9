"""The real 1,800-image sample in ../shared: the done-when checks of the data layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrdata import DatasetError, Manifest, get_scheme, leak_report, make_split, scan


@pytest.fixture(scope="module")
def manifest(radiography: Path) -> Manifest:
    return scan(radiography)


def test_every_image_is_found(manifest: Manifest) -> None:
    assert manifest.layout == "kaggle"
    assert manifest.counts() == {"COVID": 600, "Normal": 600, "Viral Pneumonia": 600}
    assert manifest.excluded == ()
    assert sum(1 for e in manifest.entries if e.patient_id) == 600


@pytest.mark.parametrize(("scheme", "classes"), [("three", 3), ("binary", 2)])
def test_three_and_binary_split_without_leaks(manifest: Manifest, scheme: str, classes: int) -> None:
    split = make_split(manifest, get_scheme(scheme))
    counts = split.counts()
    assert sum(sum(c.values()) for c in counts.values()) == 1800
    assert sum(counts["train"].values()) == pytest.approx(1260, abs=10)
    assert len(counts["val"]) == classes
    report = leak_report(manifest, split)
    assert report.cross_split_patients == ()
    assert report.cross_split_duplicates == ()
    assert report.patients_known > 400


def test_viral_pneumonia_patients_never_straddle_splits(manifest: Manifest) -> None:
    split = make_split(manifest, get_scheme("three"), seed=11)
    side = split.side_of()
    sides: dict[str, set[str]] = {}
    for index, entry in enumerate(manifest.entries):
        if entry.patient_id:
            sides.setdefault(entry.patient_id, set()).add(side[index])
    shared = [p for p, s in sides.items() if len(s) > 1]
    assert shared == []
    assert any(len([e for e in manifest.entries if e.patient_id == p]) > 1 for p in sides), (
        "the sample has repeat patients"
    )


def test_four_fails_with_the_clear_sentence(manifest: Manifest) -> None:
    with pytest.raises(DatasetError) as info:
        make_split(manifest, get_scheme("four"))
    assert str(info.value) == (
        "The 'four' scheme needs images in the class folder(s) 'Lung_Opacity', but the folders found are: "
        "'COVID', 'Normal', 'Viral Pneumonia'."
    )


def test_the_pediatric_source_is_flagged_as_confounded(manifest: Manifest) -> None:
    report = leak_report(manifest, make_split(manifest, get_scheme("three")))
    assert report.confounded_sources == {"kermany-pediatric": "Viral Pneumonia"}
