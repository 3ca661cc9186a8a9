"""Plotly figures for the leaderboard. Pure: frames in, figures out (Optuna's own plots for study charts)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from leaderboard.data import LABELS, pareto_front

__all__ = [
    "IMPORTANCE_MAX_TRIALS",
    "confusion_figure",
    "learning_curve_figure",
    "optuna_figure",
    "optuna_front",
    "roc_figure",
    "sensitivity_focus_figure",
]

# fANOVA on every trial of a 10,000-trial study takes minutes; a random sample of this many
# completed trials gives the same ranking of parameters in seconds.
IMPORTANCE_MAX_TRIALS = 1000


def sensitivity_focus_figure(
    frame: pd.DataFrame,
    *,
    min_lung_focus_ratio: float | None = None,
    front_trials: Collection[int] | None = None,
) -> go.Figure:
    """COVID sensitivity (at the target specificity where trials have it) against lung focus,
    Pareto front marked. Until lung focus is measured, the y axis falls back to COVID AUC and the
    title says so.

    ``min_lung_focus_ratio`` (a study's lung-focus constraint): the y axis is lung focus / lung
    area, the figure the constraint is on, with the threshold drawn as a line and the trials
    below it marked infeasible (the unmeasured ones, also infeasible, are counted in the title).
    ``front_trials`` (the Optuna trial numbers of a multi-objective study's ``best_trials``, see
    :func:`optuna_front`): Optuna's own front is marked instead of the one drawn from this plane.
    """
    done = frame[frame["state"] == "COMPLETE"].copy()
    x = "op_sensitivity" if "op_sensitivity" in done and done["op_sensitivity"].notna().any() else "covid_sensitivity"
    measured = done["lung_focus"].notna().any()
    constrained = min_lung_focus_ratio is not None and "lung_focus_ratio" in done
    y = "lung_focus_ratio" if constrained and measured else "lung_focus" if measured else "covid_auc"
    if front_trials is not None:
        engine = done["engine"] if "engine" in done else pd.Series("optuna", index=done.index)
        done["pareto"] = done["trial_number"].isin(list(front_trials)) & (engine == "optuna")
        front_name = "Optuna's Pareto front (study.best_trials)"
    else:
        done["pareto"] = pareto_front(done, x, y)
        front_name = "Pareto front"
    title = f"{LABELS[x]} vs {LABELS[y]}" + ("" if measured else " (lung focus not measured yet)")
    if constrained:
        assert min_lung_focus_ratio is not None
        ratio = done["lung_focus_ratio"]
        done["infeasible"] = ~(ratio >= min_lung_focus_ratio)  # NaN (unmeasured) compares False: infeasible
        unmeasured = int(ratio.isna().sum())
        title += f"; infeasible: below {min_lung_focus_ratio:g}" + (
            f" ({unmeasured} unmeasured, not shown)" if unmeasured else ""
        )
    fig = px.scatter(
        done,
        x=x,
        y=y,
        color="backbone",
        symbol="pareto",
        hover_data=["trial_number", "scheme", "freeze_depth", "accuracy"],
        labels={x: LABELS[x], y: LABELS[y]},
        title=title,
    )
    front = done[done["pareto"]].sort_values(x)
    fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines", name=front_name, line={"dash": "dot"}))
    if constrained and y == "lung_focus_ratio":
        assert min_lung_focus_ratio is not None
        bad = done[done["infeasible"] & done[y].notna()]
        fig.add_trace(
            go.Scatter(
                x=bad[x],
                y=bad[y],
                mode="markers",
                name=f"infeasible (below {min_lung_focus_ratio:g})",
                marker={"symbol": "x-thin-open", "size": 14, "color": "red", "line": {"width": 2}},
                customdata=bad["trial_number"],
                hovertemplate="trial %{customdata}: infeasible<extra></extra>",
            )
        )
        fig.add_hline(
            y=min_lung_focus_ratio,
            line_dash="dash",
            line_color="red",
            annotation_text=f"min lung focus / lung area {min_lung_focus_ratio:g}",
        )
    return fig


def optuna_front(study: optuna.Study) -> list[int] | None:
    """The trial numbers of Optuna's own Pareto front (``study.best_trials``, feasible trials only
    in a constrained study) when the study is multi-objective; None for a single objective."""
    if len(study.directions) <= 1:
        return None
    return [t.number for t in study.best_trials]


def optuna_figure(study: optuna.Study, kind: str) -> go.Figure:
    """Optuna's own visualisations: history, importances, parallel coordinates, timeline."""
    if kind == "history":
        return optuna.visualization.plot_optimization_history(study, target_name="best validation loss")
    if kind == "timeline":
        return optuna.visualization.plot_timeline(study)
    if kind == "parallel":
        return optuna.visualization.plot_parallel_coordinate(study, target_name="validation loss")
    if kind == "importances":
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(done) > IMPORTANCE_MAX_TRIALS:
            sample = pd.Series(range(len(done))).sample(IMPORTANCE_MAX_TRIALS, random_state=0).tolist()
            study = optuna.create_study(direction=study.direction)
            study.add_trials([done[i] for i in sample])
        return optuna.visualization.plot_param_importances(study, target_name="validation loss")
    raise ValueError(f"`kind` must be one of history, timeline, parallel, importances, but got {kind!r}.")


def confusion_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> go.Figure:
    return px.imshow(
        confusion,
        x=list(class_names),
        y=list(class_names),
        text_auto=True,
        labels={"x": "predicted", "y": "true", "color": "images"},
        color_continuous_scale="Blues",
        title="Confusion matrix (validation)",
    )


def roc_figure(fpr: Sequence[float], tpr: Sequence[float], auc: float | None) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(fpr), y=list(tpr), mode="lines", name="COVID vs rest"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, name="chance"))
    label = "" if auc is None else f" (AUC {auc:.3f})"
    fig.update_layout(title=f"ROC, COVID vs rest{label}", xaxis_title="1 - specificity", yaxis_title="sensitivity")
    return fig


def learning_curve_figure(epochs: pd.DataFrame, pruned_at: int | None) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs["epoch"], y=epochs["loss"], mode="lines+markers", name="training loss"))
    fig.add_trace(go.Scatter(x=epochs["epoch"], y=epochs["val_loss"], mode="lines+markers", name="validation loss"))
    if pruned_at is not None:
        fig.add_vline(x=pruned_at, line_dash="dash", line_color="red", annotation_text="pruned")
    fig.update_layout(title="Learning curves", xaxis_title="epoch", yaxis_title="loss")
    return fig
