"""Exact and near-duplicate images.

Exact duplicates share the file's SHA-256. Near duplicates (a resized, re-encoded or
re-labelled copy) are pairs whose perceptual hash *and* difference hash are both within
``max_bits`` of each other: on real chest X-rays many distinct images of similar patients
sit 6-8 bits apart on one hash alone, while copies sit within 4 bits on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cxrdata._manifest import Entry

__all__ = ["DuplicateGroup", "find_duplicates"]

NEAR_MAX_BITS = 4
_CHUNK = 2048


@dataclass(frozen=True)
class DuplicateGroup:
    """Entries (indices into the manifest) that show the same image."""

    kind: str  # "exact" when all files are byte-identical, else "near"
    members: tuple[int, ...]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _hashes(entries: Sequence[Entry], field: str) -> np.ndarray:
    return np.array([int(getattr(e, field), 16) for e in entries], dtype=np.uint64)


def _near_pairs(entries: Sequence[Entry], max_bits: int) -> list[tuple[int, int]]:
    """All pairs within ``max_bits`` on both hashes, in chunks so memory stays bounded."""
    phash, dhash = _hashes(entries, "phash"), _hashes(entries, "dhash")
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(entries), _CHUNK):
        stop = min(start + _CHUNK, len(entries))
        near_p = np.bitwise_count(phash[start:stop, None] ^ phash[None, :]) <= max_bits
        near_d = np.bitwise_count(dhash[start:stop, None] ^ dhash[None, :]) <= max_bits
        rows, cols = np.nonzero(near_p & near_d)
        rows = rows + start
        keep = rows < cols
        pairs.extend(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
    return pairs


def find_duplicates(entries: Sequence[Entry], *, max_bits: int = NEAR_MAX_BITS) -> list[DuplicateGroup]:
    """Group the entries that are exact or near copies of each other (groups of two or more)."""
    if not 0 <= max_bits <= 64:
        raise ValueError(f"`0 <= max_bits <= 64` must hold, but got max_bits={max_bits}.")
    union = _UnionFind(len(entries))
    first_of: dict[str, int] = {}
    for index, entry in enumerate(entries):
        union.union(first_of.setdefault(entry.sha256, index), index)
    if entries:
        for i, j in _near_pairs(entries, max_bits):
            union.union(i, j)
    groups: dict[int, list[int]] = {}
    for index in range(len(entries)):
        groups.setdefault(union.find(index), []).append(index)
    found = []
    for members in groups.values():
        if len(members) > 1:
            kind = "exact" if len({entries[m].sha256 for m in members}) == 1 else "near"
            found.append(DuplicateGroup(kind, tuple(members)))
    return sorted(found, key=lambda g: g.members[0])
