"""What could let a model score well without reading the lungs: leaks and confounders."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from cxrdata._manifest import Manifest
from cxrdata._split import Split

__all__ = ["LeakReport", "leak_report"]


@dataclass(frozen=True)
class LeakReport:
    """Duplicates and patients that cross splits, conflicting labels, and class-confounded sources."""

    duplicate_groups: int
    duplicate_images: int
    cross_split_duplicates: tuple[tuple[str, ...], ...]
    conflicting_labels: tuple[tuple[str, ...], ...]
    cross_split_patients: tuple[str, ...]
    patients_known: int
    confounded_sources: dict[str, str]

    @property
    def leaks(self) -> bool:
        return bool(self.cross_split_duplicates or self.cross_split_patients)


def leak_report(manifest: Manifest, split: Split) -> LeakReport:
    """Check a split for duplicates and patients on more than one side.

    A source that supplies every image of one class (and none of the others) is listed as
    confounded: a model can learn the source (scanner, age group, burnt-in text) instead of
    the disease.
    """
    side = split.side_of()
    cross, conflicting = [], []
    for group in split.duplicates:
        paths = tuple(manifest.entries[m].path for m in group.members)
        sides = {side[m] for m in group.members} - {""}
        if len(sides) > 1:
            cross.append(paths)
        if len({manifest.entries[m].label for m in group.members}) > 1:
            conflicting.append(paths)

    patient_sides: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, set[str]] = defaultdict(set)
    for index, entry in enumerate(manifest.entries):
        if entry.patient_id and side[index]:
            patient_sides[entry.patient_id].add(side[index])
        if entry.source:
            sources[entry.source].add(entry.label)
    confounded = {src: next(iter(labels)) for src, labels in sources.items() if len(labels) == 1 and len(sources) > 1}
    return LeakReport(
        duplicate_groups=len(split.duplicates),
        duplicate_images=sum(len(g.members) for g in split.duplicates),
        cross_split_duplicates=tuple(cross),
        conflicting_labels=tuple(conflicting),
        cross_split_patients=tuple(sorted(p for p, s in patient_sides.items() if len(s) > 1)),
        patients_known=len(patient_sides),
        confounded_sources=confounded,
    )
