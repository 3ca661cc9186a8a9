"""Plotly figures for the leaderboard. Pure: frames in, figures out (Optuna's own plots for study charts)."""

from __future__ import annotations

from collections.abc import Sequence

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
    "roc_figure",
    "sensitivity_focus_figure",
]

# fANOVA on every trial of a 10,000-trial study takes minutes; a random sample of this many
# completed trials gives the same ranking of parameters in seconds.
IMPORTANCE_MAX_TRIALS = 1000


def sensitivity_focus_figure(frame: pd.DataFrame) -> go.Figure:
    """COVID sensitivity (at the target specificity where trials have it) against lung focus,
    Pareto front marked. Until lung focus is measured, the y axis falls back to COVID AUC and the
    title says so."""
    done = frame[frame["state"] == "COMPLETE"].copy()
    x = "op_sensitivity" if "op_sensitivity" in done and done["op_sensitivity"].notna().any() else "covid_sensitivity"
    measured = done["lung_focus"].notna().any()
    y = "lung_focus" if measured else "covid_auc"
    done["pareto"] = pareto_front(done, x, y)
    title = f"{LABELS[x]} vs {LABELS[y]}" + ("" if measured else " (lung focus not measured yet)")
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
    fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines", name="Pareto front", line={"dash": "dot"}))
    return fig


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
