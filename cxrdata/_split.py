"""Train/validation/test splits: stratified, deterministic, and grouped by patient and duplicate.

scikit-learn's ``StratifiedGroupKFold`` only makes equal folds, so 70/20/10 (or any other
fractions) would need a fold count per ratio. A greedy assignment of whole groups to the
split that most lacks their classes gives any fractions directly, and on data with mostly
singleton groups it hits the targets exactly.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cxrdata._classes import Scheme
from cxrdata._duplicates import DuplicateGroup, _UnionFind, find_duplicates
from cxrdata._errors import DatasetError
from cxrdata._manifest import Manifest

__all__ = ["SPLITS", "Split", "make_folds", "make_split"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Indices into ``manifest.entries`` for each split, with the scheme labels of every entry."""

    scheme: Scheme
    fractions: tuple[float, float, float]
    seed: int
    labels: np.ndarray
    indices: dict[str, np.ndarray]
    duplicates: tuple[DuplicateGroup, ...]
    dataset_fingerprint: str
    notes: tuple[str, ...] = field(default=())

    @property
    def fingerprint(self) -> str:
        """Changes when the data, the scheme, the fractions, the seed or any assignment does."""
        digest = hashlib.sha256(f"{self.dataset_fingerprint}|{self.scheme.name}|{self.fractions}|{self.seed}".encode())
        for name in SPLITS:
            digest.update(name.encode() + np.sort(self.indices[name]).tobytes())
        return digest.hexdigest()[:16]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and model class."""
        names = self.scheme.class_names
        return {
            split: {names[c]: int((self.labels[idx] == c).sum()) for c in range(len(names))}
            for split, idx in self.indices.items()
        }

    def side_of(self) -> np.ndarray:
        """Split name per entry ('' for entries the scheme leaves out)."""
        side = np.full(len(self.labels), "", dtype=object)
        for name, idx in self.indices.items():
            side[idx] = name
        return side


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ValueError(f"`fractions` must be three numbers (train, val, test), but got {tuple(fractions)}.")
    train, val, test = (float(f) for f in fractions)
    if min(train, val, test) < 0 or train == 0 or val == 0:
        raise ValueError(
            f"`train > 0, val > 0 and test >= 0` must hold, but got (train={train}, val={val}, test={test})."
        )
    if not math.isclose(train + val + test, 1.0, abs_tol=1e-6):
        raise ValueError(
            f"`train + val + test == 1` must hold, but got {train:g} + {val:g} + {test:g} = {train + val + test:g}."
        )
    return train, val, test


def _groups(manifest: Manifest, keep: np.ndarray, duplicates: Sequence[DuplicateGroup]) -> list[list[int]]:
    """Entries that must stay on one side: same patient, or copies of one image."""
    union = _UnionFind(len(manifest.entries))
    first_of_patient: dict[str, int] = {}
    for index, entry in enumerate(manifest.entries):
        if entry.patient_id:
            union.union(first_of_patient.setdefault(entry.patient_id, index), index)
    for group in duplicates:
        for member in group.members[1:]:
            union.union(group.members[0], member)
    groups: dict[int, list[int]] = {}
    for index in np.flatnonzero(keep).tolist():
        groups.setdefault(union.find(index), []).append(index)
    return list(groups.values())


def _assign(
    groups: Sequence[list[int]], labels: np.ndarray, shares: Sequence[float], n_classes: int, seed: int
) -> tuple[list[list[int]], np.ndarray]:
    """Whole groups into ``len(shares)`` bins, each bin's classes as close to its share as groups allow.

    Returns the bins' entries and the (bin, class) counts they reached.
    """
    members_all = [m for g in groups for m in g]
    totals = np.bincount(labels[members_all], minlength=n_classes).astype(float)
    targets = np.outer(shares, totals)  # (bin, class)
    current = np.zeros_like(targets)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    # Big groups first: they are the hard ones to place; ties keep the seeded order.
    ordered = sorted(order.tolist(), key=lambda g: -len(groups[g]))
    bins: list[list[int]] = [[] for _ in shares]
    for g in ordered:
        members = groups[g]
        counts = np.bincount(labels[members], minlength=n_classes)
        # Relative deficit of each bin for this group's classes; the neediest bin wins.
        deficit = ((targets - current) / np.maximum(targets, 1e-9)) @ counts
        deficit[np.asarray(shares) == 0] = -np.inf
        side = int(np.argmax(deficit))
        current[side] += counts
        bins[side].extend(members)
    return bins, current


def make_folds(manifest: Manifest, split: Split, k: int) -> list[np.ndarray]:
    """``k`` cross-validation folds over the split's train and validation entries (never its test).

    Stratified by class and grouped like the split itself (a patient or a duplicate group stays
    in one fold), deterministic from the split's seed. Fold ``i`` is validated on
    ``folds[i]`` and trained on the others.
    """
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"`k >= 2` must hold for cross-validation folds, but got k={k}.")
    pool = np.zeros(len(manifest.entries), dtype=bool)
    pool[split.indices["train"]] = True
    pool[split.indices["val"]] = True
    groups = _groups(manifest, pool, split.duplicates)
    if len(groups) < k:
        raise DatasetError(f"`k` folds need at least k groups of images, but got k={k} and {len(groups)} groups.")
    bins, current = _assign(groups, split.labels, [1 / k] * k, split.scheme.num_classes, split.seed + 1)
    if not all(current.sum(axis=1)):
        raise DatasetError(f"Every one of the {k} folds must hold images, but some are empty.")
    return [np.array(sorted(b), dtype=np.int64) for b in bins]


def make_split(
    manifest: Manifest,
    scheme: Scheme,
    *,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    duplicates: Sequence[DuplicateGroup] | None = None,
) -> Split:
    """Split the entries the scheme uses, keeping each patient and duplicate group on one side."""
    shares = _check_fractions(fractions)
    labels = manifest.labels(scheme)
    keep = labels >= 0
    if duplicates is None:
        duplicates = find_duplicates(manifest.entries)
    groups = _groups(manifest, keep, duplicates)

    n_classes = scheme.num_classes
    totals = np.bincount(labels[keep], minlength=n_classes).astype(float)
    assigned_lists, current = _assign(groups, labels, shares, n_classes, seed)
    assigned = dict(zip(SPLITS, assigned_lists, strict=True))

    notes = []
    for s, name in enumerate(SPLITS):
        if shares[s] == 0:
            continue
        empty = [scheme.class_names[c] for c in range(n_classes) if totals[c] and current[s, c] == 0]
        if empty:
            notes.append(f"The {name} split has no image of {', '.join(empty)}: too few images or patients.")
    if not any(current[1]):
        raise DatasetError(f"The validation split must hold images, but {int(totals.sum())} images are too few.")
    return Split(
        scheme=scheme,
        fractions=shares,
        seed=seed,
        labels=labels,
        indices={name: np.array(sorted(idx), dtype=np.int64) for name, idx in assigned.items()},
        duplicates=tuple(duplicates),
        dataset_fingerprint=manifest.fingerprint,
        notes=tuple(notes),
    )
