"""The Optuna objective: suggest a config, run and record the trial, return val_loss.

With the study's ``min_lung_focus_ratio`` a completed trial also gets its lung-focus constraint
value (see ``search._study.focus_constraint``), and with ``max_hidden_lungs_auc`` its
lungs-hidden one (``search._study.hidden_constraint``).
"""

from __future__ import annotations

from dataclasses import asdict

import optuna

from search._engines import OPTUNA
from search._recording import TrialRecorder
from search._runtime import run_and_record
from search._study import FOCUS_CONSTRAINT, HIDDEN_CONSTRAINT, focus_constraint, hidden_constraint
from search._trial import TrialData
from search.space import SearchSpace

__all__ = ["ENGINE", "Objective"]

ENGINE = OPTUNA


class Objective:
    """Callable objective of a study; one instance per worker process."""

    def __init__(
        self, *, space: SearchSpace, data: TrialData, recorder: TrialRecorder, weights: str, seed: int
    ) -> None:
        self.space, self.data, self.recorder, self.weights, self.seed = space, data, recorder, weights, seed

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.suggest(trial, weights=self.weights, seed=self.seed)
        trial.set_user_attr("config", asdict(config))

        def report(epoch: int, val_loss: float) -> bool:
            trial.report(val_loss, epoch)
            return bool(trial.should_prune())

        outcome = run_and_record(config, self.data, self.recorder, trial, trial.number, report=report)
        if outcome.fit.pruned:
            # No focus before the trial completes: a pruned trial gets no constraint value.
            raise optuna.TrialPruned(f"pruned after epoch {outcome.fit.history[-1].epoch}")
        assert outcome.metrics is not None
        trial.set_user_attr("covid_sensitivity", outcome.metrics.covid_sensitivity)
        trial.set_user_attr("accuracy", outcome.metrics.accuracy)
        ratio = outcome.focus.ratio if outcome.focus is not None else None
        trial.set_user_attr("lung_focus_ratio", ratio)
        trial.set_user_attr("hidden_lungs_auc", outcome.hidden_lungs_auc)
        minimum, maximum = self.space.training.min_lung_focus_ratio, self.space.training.max_hidden_lungs_auc
        if minimum is not None:
            trial.set_constraint(FOCUS_CONSTRAINT, focus_constraint(ratio, minimum))
        if maximum is not None:
            trial.set_constraint(HIDDEN_CONSTRAINT, hidden_constraint(outcome.hidden_lungs_auc, maximum))
        return outcome.fit.best_val_loss
