"""``Predictions``: a model's class probabilities on a set of manifest entries, and their SQL form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.store._schema import PredictionRow

__all__ = ["Predictions"]


@dataclass(frozen=True)
class Predictions:
    """``proba[i]`` is the model's output for manifest entry ``indices[i]``, whose label is ``labels[i]``."""

    kind: str  # "val" (the validation split) or "oof" (out-of-fold over train+validation)
    indices: np.ndarray
    labels: np.ndarray
    proba: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.indices)
        if self.proba.ndim != 2 or self.proba.shape[0] != n or len(self.labels) != n:
            raise ValueError(
                f"Predictions must hold one label and one probability row per index, but got {n} indices, "
                f"{len(self.labels)} labels and probabilities of shape {self.proba.shape}."
            )

    def to_row(self) -> PredictionRow:
        return PredictionRow(
            kind=self.kind,
            n=len(self.indices),
            k=int(self.proba.shape[1]),
            indices=np.asarray(self.indices, dtype="<i4").tobytes(),
            labels=np.asarray(self.labels, dtype="<i4").tobytes(),
            proba=np.asarray(self.proba, dtype="<f4").tobytes(),
        )

    @classmethod
    def from_row(cls, row: PredictionRow) -> Predictions:
        return cls(
            kind=row.kind,
            indices=np.frombuffer(row.indices, dtype="<i4").astype(np.int64),
            labels=np.frombuffer(row.labels, dtype="<i4").astype(np.int64),
            proba=np.frombuffer(row.proba, dtype="<f4").reshape(row.n, row.k).astype(np.float64),
        )
