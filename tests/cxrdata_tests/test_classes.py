from __future__ import annotations

import pytest

from cxrdata import COVID, LUNG_OPACITY, NORMAL, VIRAL_PNEUMONIA, DatasetError, canonical_class, get_scheme


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("COVID", COVID),
        ("covid", COVID),
        ("COVID-19", COVID),
        ("Normal", NORMAL),
        ("NORMAL", NORMAL),
        ("Lung_Opacity", LUNG_OPACITY),
        ("lung opacity", LUNG_OPACITY),
        ("Viral Pneumonia", VIRAL_PNEUMONIA),
        ("viral_pneumonia", VIRAL_PNEUMONIA),
        ("ViralPneumonia", VIRAL_PNEUMONIA),
        ("Pneumonia", None),
        ("Bacterial Pneumonia", None),
        ("images", None),
    ],
)
def test_folder_names_match_insensitively_and_nothing_is_guessed(folder: str, expected: str | None) -> None:
    assert canonical_class(folder) == expected


@pytest.mark.parametrize(
    ("scheme", "names"),
    [
        ("binary", ("COVID", "Non-COVID")),
        ("three", ("COVID", "Normal", "Viral Pneumonia")),
        ("four", ("COVID", "Normal", "Lung_Opacity", "Viral Pneumonia")),
    ],
)
def test_covid_is_always_label_zero(scheme: str, names: tuple[str, ...]) -> None:
    s = get_scheme(scheme)
    assert s.class_names == names
    assert s.label_of(COVID) == 0


def test_binary_pools_every_other_class() -> None:
    s = get_scheme("binary")
    assert {s.label_of(c) for c in (NORMAL, LUNG_OPACITY, VIRAL_PNEUMONIA)} == {1}


def test_three_leaves_lung_opacity_out() -> None:
    assert get_scheme("three").label_of(LUNG_OPACITY) is None


def test_unknown_scheme_names_the_choices_and_suggests() -> None:
    with pytest.raises(
        DatasetError, match=r"`scheme` must be one of binary, three, four, but got 'thre'. Did you mean 'three'\?"
    ):
        get_scheme("thre")


@pytest.mark.parametrize(
    ("scheme", "available", "message"),
    [
        ("four", ["COVID", "Normal", "Viral Pneumonia"], "needs images in the class folder(s) 'Lung_Opacity', but"),
        ("three", ["COVID", "Normal"], "needs images in the class folder(s) 'Viral Pneumonia', but"),
        ("binary", ["COVID"], "'Normal' or 'Lung_Opacity' or 'Viral Pneumonia'"),
        ("binary", ["Normal"], "needs images in the class folder(s) 'COVID', but"),
    ],
)
def test_scheme_with_missing_classes_fails_with_one_sentence(scheme: str, available: list[str], message: str) -> None:
    with pytest.raises(DatasetError) as info:
        get_scheme(scheme).check_available(available, ["covid", "normal"])
    assert message in str(info.value)
    assert str(info.value).endswith("the folders found are: 'covid', 'normal'.")


@pytest.mark.parametrize("other", [NORMAL, LUNG_OPACITY, VIRAL_PNEUMONIA])
def test_binary_needs_only_one_other_class(other: str) -> None:
    binary = get_scheme("binary")
    binary.check_available([COVID, other], [COVID, other])  # enough: no DatasetError
    assert [binary.label_of(c) for c in (COVID, other)] == [0, 1], "the one other class is all of Non-COVID"
    with pytest.raises(DatasetError, match="needs images in the class folder"):
        binary.check_available([other], [other])  # without COVID it is not
