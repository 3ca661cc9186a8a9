"""Canonical classes, folder-name matching and class schemes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cxrdata._errors import DatasetError

__all__ = [
    "CLASSES",
    "COVID",
    "LUNG_OPACITY",
    "NORMAL",
    "SCHEMES",
    "VIRAL_PNEUMONIA",
    "Scheme",
    "canonical_class",
    "did_you_mean",
    "get_scheme",
]

COVID = "COVID"
NORMAL = "Normal"
LUNG_OPACITY = "Lung_Opacity"
VIRAL_PNEUMONIA = "Viral Pneumonia"
CLASSES: tuple[str, ...] = (COVID, NORMAL, LUNG_OPACITY, VIRAL_PNEUMONIA)

# Folder names are compared after dropping case, spaces, underscores and hyphens, so
# "viral_pneumonia", "Viral Pneumonia" and "LUNG-OPACITY" all match. "COVID-19" is the
# one spelling beyond that rule: it is how most exports outside Kaggle name the class.
_KEYS: dict[str, str] = {
    "covid": COVID,
    "covid19": COVID,
    "normal": NORMAL,
    "lungopacity": LUNG_OPACITY,
    "viralpneumonia": VIRAL_PNEUMONIA,
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def canonical_class(folder_name: str) -> str | None:
    """Return the canonical class a folder name stands for, or ``None`` if it is unknown."""
    return _KEYS.get(_key(folder_name))


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean 'x'?"`` for the nearest choices, or ``""`` when none is close."""
    choices = list(choices)
    by_key = {_key(c): c for c in choices}
    close = difflib.get_close_matches(_key(name), list(by_key), n=n, cutoff=0.6)
    if not close:
        return ""
    names = " or ".join(repr(by_key[k]) for k in close)
    return f" Did you mean {names}?"


@dataclass(frozen=True)
class Scheme:
    """A labelling of the canonical classes into the classes a model predicts.

    ``groups`` maps each model class (in output order) to the canonical classes it covers.
    The COVID class is always output 0, so "COVID vs rest" metrics read the same column in
    every scheme.
    """

    name: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.groups)

    @property
    def num_classes(self) -> int:
        return len(self.groups)

    def label_of(self, canonical: str) -> int | None:
        """Model label index of a canonical class, ``None`` if the scheme leaves it out."""
        for index, (_, members) in enumerate(self.groups):
            if canonical in members:
                return index
        return None

    def check_available(self, available: Sequence[str], found_folders: Sequence[str]) -> None:
        """Fail with one sentence naming the missing class folders and the folders found.

        A model class is satisfied when any canonical class it covers has images, so the
        binary scheme needs COVID plus at least one other class.
        """
        missing = [
            " or ".join(repr(m) for m in members)
            for _, members in self.groups
            if not any(m in available for m in members)
        ]
        if missing:
            found = ", ".join(repr(f) for f in found_folders) or "none"
            raise DatasetError(
                f"The '{self.name}' scheme needs images in the class folder(s) {', '.join(missing)}, "
                f"but the folders found are: {found}."
            )


SCHEMES: dict[str, Scheme] = {
    # Binary pools whichever non-COVID classes are present, so COVID-vs-Normal is enough.
    "binary": Scheme("binary", ((COVID, (COVID,)), ("Non-COVID", (NORMAL, LUNG_OPACITY, VIRAL_PNEUMONIA)))),
    "three": Scheme("three", ((COVID, (COVID,)), (NORMAL, (NORMAL,)), (VIRAL_PNEUMONIA, (VIRAL_PNEUMONIA,)))),
    "four": Scheme(
        "four",
        (
            (COVID, (COVID,)),
            (NORMAL, (NORMAL,)),
            (LUNG_OPACITY, (LUNG_OPACITY,)),
            (VIRAL_PNEUMONIA, (VIRAL_PNEUMONIA,)),
        ),
    ),
}


def get_scheme(name: str) -> Scheme:
    """Return the scheme called ``name``, failing with the valid names."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise DatasetError(
            f"`scheme` must be one of {', '.join(SCHEMES)}, but got {name!r}.{did_you_mean(name, SCHEMES)}"
        ) from None
