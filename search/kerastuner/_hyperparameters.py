"""Our search space, declared through KerasTuner's ``HyperParameters``.

``SearchSpace.suggest`` speaks Optuna's ``suggest_*`` vocabulary; this adapter answers it
with KerasTuner's ``Choice``/``Int``/``Float``/``Fixed``, so both engines draw from the one
definition of the space instead of two copies that drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["HyperParametersTrial"]


class HyperParametersTrial:
    """Looks like an ``optuna.Trial`` to ``SearchSpace.suggest``; records into ``hp``."""

    def __init__(self, hp: Any, number: int) -> None:
        self.hp = hp
        self.number = number

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        values = list(choices)
        if len(values) == 1:
            return self.hp.Fixed(name, values[0])
        return self.hp.Choice(name, values)

    def suggest_float(
        self, name: str, low: float, high: float, *, log: bool = False, step: float | None = None
    ) -> float:
        if low == high:
            return float(self.hp.Fixed(name, float(low)))
        sampling = "log" if log else "linear"
        return float(self.hp.Float(name, float(low), float(high), step=step, sampling=sampling))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False, step: int = 1) -> int:
        if low == high:
            return int(self.hp.Fixed(name, int(low)))
        sampling = "log" if log else "linear"
        return int(self.hp.Int(name, int(low), int(high), step=None if log else step, sampling=sampling))
