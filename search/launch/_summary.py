"""What launch prints at the end: the top trials as a text table, and how many met the study's constraint."""

from __future__ import annotations

from collections.abc import Sequence

from search.store import Ranking, TrialRow

__all__ = ["feasibility_line", "top_table"]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return "-" if value is None else f"{value:.3f} [{_fmt(low, 2)}, {_fmt(high, 2)}]"


def top_table(rows: Sequence[TrialRow]) -> str:
    """The ranked rows as a text table: the operating point's figures with their 95% intervals."""
    header = (
        "rank",
        "engine",
        "trial",
        "backbone",
        "scheme",
        "freeze",
        "COVID sens @ target [95% CI]",
        "COVID spec @ target",
        "threshold",
        "COVID AUC",
        "focus/lung",
        "AUC lungs hidden",
        "accuracy",
        "epochs",
        "time",
    )
    lines = [header] + [
        (
            str(i + 1),
            r.engine,
            str(r.trial_number),
            r.backbone,
            r.scheme,
            f"{r.freeze_depth:.2f}",
            _interval(r.op_sensitivity, r.op_sensitivity_low, r.op_sensitivity_high),
            _fmt(r.op_specificity),
            _fmt(r.covid_threshold, 4),
            _fmt(r.covid_auc),
            _fmt(r.lung_focus_ratio, 2),
            _fmt(r.hidden_lungs_auc),
            _fmt(r.accuracy),
            str(r.epochs_run),
            f"{r.wall_time_s:.0f}s",
        )
        for i, r in enumerate(rows)
    ]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def feasibility_line(rows: Sequence[TrialRow], ranking: Ranking) -> str:
    """How many completed trials met the study's constraints (``ranking.constrained`` must hold)."""
    feasible = sum(ranking.feasible(r) for r in rows)
    text = f"Feasible ({ranking.constraint_text()}): {feasible} of {len(rows)} completed trial(s)"
    if feasible < len(rows):
        text += "; the others rank after them"
        unmeasured = []
        if ranking.min_lung_focus_ratio is not None and (n := sum(r.lung_focus_ratio is None for r in rows)):
            unmeasured.append(f"{n} without a measured lung focus")
        if ranking.max_hidden_lungs_auc is not None and (n := sum(r.hidden_lungs_auc is None for r in rows)):
            unmeasured.append(f"{n} without a measured AUC with the lungs hidden")
        if unmeasured:
            text += f" ({', '.join(unmeasured)})"
    if rows and not feasible:
        text += ". No trial meets the constraint: the top trial above is infeasible"
    return text + "."
