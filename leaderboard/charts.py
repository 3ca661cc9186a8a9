"""Plotly figures for the leaderboard. Pure: frames in, figures out (Optuna's own plots for study charts)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from leaderboard.data import LABELS, pareto_front

__all__ = [
    "IMPORTANCE_MAX_TRIALS",
    "SCATTER_MAX_POINTS",
    "best_so_far_figure",
    "compare_figure",
    "confusion_figure",
    "distribution_figure",
    "fronts_figure",
    "learning_curve_figure",
    "optuna_figure",
    "optuna_front",
    "roc_figure",
    "sensitivity_focus_figure",
]

# fANOVA on every trial of a 10,000-trial study takes minutes; a random sample of this many
# completed trials gives the same ranking of parameters in seconds.
IMPORTANCE_MAX_TRIALS = 1000
# A browser draws a few thousand markers quickly; past this many completed trials the scatter
# shows the front in full and a reproducible random sample of the others (the title says so).
SCATTER_MAX_POINTS = 2000


def sensitivity_focus_figure(
    frame: pd.DataFrame,
    *,
    min_lung_focus_ratio: float | None = None,
    max_hidden_lungs_auc: float | None = None,
    front_trials: Collection[int] | None = None,
) -> go.Figure:
    """COVID sensitivity (at the target specificity where trials have it) against lung focus,
    Pareto front marked. Until lung focus is measured, the y axis falls back to COVID AUC and the
    title says so.

    ``min_lung_focus_ratio`` (a study's lung-focus constraint): the y axis is lung focus / lung
    area, the figure the constraint is on, with the threshold drawn as a line and the trials
    below it marked infeasible (the unmeasured ones, also infeasible, are counted in the title).
    ``max_hidden_lungs_auc`` (a study's lungs-hidden constraint): the trials above it, or
    unmeasured, are marked infeasible too.
    ``front_trials`` (the Optuna trial numbers of a multi-objective study's ``best_trials``, see
    :func:`optuna_front`): Optuna's own front is marked instead of the one drawn from this plane.
    Past :data:`SCATTER_MAX_POINTS` completed trials, the front and a sample of the others are drawn.
    """
    done = frame[frame["state"] == "COMPLETE"].copy()
    x = "op_sensitivity" if "op_sensitivity" in done and done["op_sensitivity"].notna().any() else "covid_sensitivity"
    measured = done["lung_focus"].notna().any()
    by_focus = min_lung_focus_ratio is not None and "lung_focus_ratio" in done
    by_hidden = max_hidden_lungs_auc is not None and "hidden_lungs_auc" in done
    y = "lung_focus_ratio" if by_focus and measured else "lung_focus" if measured else "covid_auc"
    if front_trials is not None:
        engine = done["engine"] if "engine" in done else pd.Series("optuna", index=done.index)
        done["pareto"] = done["trial_number"].isin(list(front_trials)) & (engine == "optuna")
        front_name = "Optuna's Pareto front (study.best_trials)"
    else:
        done["pareto"] = pareto_front(done, x, y)
        front_name = "Pareto front"
    title = f"{LABELS[x]} vs {LABELS[y]}" + ("" if measured else " (lung focus not measured yet)")
    reasons = []
    done["infeasible"] = False
    if by_focus:
        # NaN (unmeasured) compares False: infeasible.
        done["infeasible"] |= ~(done["lung_focus_ratio"] >= min_lung_focus_ratio)
        reasons.append(f"lung focus / lung area below {min_lung_focus_ratio:g}")
    if by_hidden and max_hidden_lungs_auc is not None:
        top = max_hidden_lungs_auc
        done["infeasible"] |= ~done["hidden_lungs_auc"].between(1.0 - top, top)  # NaN: infeasible
        reasons.append(f"AUC with the lungs hidden not between {1.0 - top:g} and {top:g}")
    if reasons:
        unmeasured = int(done[y].isna().sum())
        title += f"; infeasible: {', or '.join(reasons)}" + (
            f" ({unmeasured} unmeasured, not shown)" if unmeasured else ""
        )
    if len(done) > SCATTER_MAX_POINTS:
        others = done[~done["pareto"]]
        keep = others.sample(max(0, SCATTER_MAX_POINTS - int(done["pareto"].sum())), random_state=0).index
        total = len(done)
        done = done[done["pareto"] | done.index.isin(keep)]
        title += f" ({len(done):,} of {total:,} completed trials shown, the front in full)"
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
    if reasons:
        bad = done[done["infeasible"] & done[y].notna()]
        fig.add_trace(
            go.Scatter(
                x=bad[x],
                y=bad[y],
                mode="markers",
                name=f"infeasible ({', or '.join(reasons)})",
                marker={"symbol": "x-thin-open", "size": 14, "color": "red", "line": {"width": 2}},
                customdata=bad["trial_number"],
                hovertemplate="trial %{customdata}: infeasible<extra></extra>",
            )
        )
    if by_focus and y == "lung_focus_ratio":
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


# Several trials or studies on one chart: one colour each, the same in every chart of a page.
PALETTE = px.colors.qualitative.Plotly


def best_so_far_figure(curves: Mapping[str, pd.DataFrame], figure: str) -> go.Figure:
    """Best-so-far ``figure`` of each study, against wall time (left) and trials (right)."""
    name = LABELS.get(figure, figure)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("over wall time", "over trials"), shared_yaxes=True)
    for k, (label, curve) in enumerate(curves.items()):
        color = PALETTE[k % len(PALETTE)]
        for col, x in ((1, "hours"), (2, "trials")):
            fig.add_trace(
                go.Scatter(
                    x=curve[x], y=curve["best"], mode="lines", line={"shape": "hv", "color": color}, name=label,
                    legendgroup=label, showlegend=col == 1, customdata=curve["trial_number"],
                    hovertemplate=f"{label}: best %{{y:.3f}} (trial %{{customdata}})<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(title_text="hours since the first trial", row=1, col=1)
    fig.update_xaxes(title_text="trials recorded", row=1, col=2)
    fig.update_yaxes(title_text=f"best {name}", row=1, col=1)
    fig.update_layout(title=f"Best {name} so far")
    return fig


def distribution_figure(frames: Mapping[str, pd.DataFrame], figures: Sequence[str]) -> go.Figure:
    """The distribution of each of ``figures`` over each study's completed trials (overlaid
    histograms, as a share of the study's trials so studies of different sizes compare)."""
    fig = make_subplots(rows=1, cols=len(figures), subplot_titles=[LABELS.get(f, f) for f in figures])
    for k, (label, frame) in enumerate(frames.items()):
        done = frame[frame["state"] == "COMPLETE"]
        for col, figure in enumerate(figures, start=1):
            fig.add_trace(
                go.Histogram(
                    x=done[figure].dropna(), name=label, legendgroup=label, showlegend=col == 1, opacity=0.6,
                    histnorm="probability", marker={"color": PALETTE[k % len(PALETTE)]}, xbins={"size": 0.02},
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_layout(barmode="overlay", title="Completed trials: distribution", yaxis_title="share of trials")
    return fig


def fronts_figure(frames: Mapping[str, pd.DataFrame], x: str, y: str = "lung_focus") -> go.Figure:
    """Each study's completed trials (faint) and its Pareto front of ``x`` against ``y`` (a line),
    on one chart."""
    fig = go.Figure()
    for k, (label, frame) in enumerate(frames.items()):
        color = PALETTE[k % len(PALETTE)]
        done = frame[frame["state"] == "COMPLETE"].dropna(subset=[x, y])
        fig.add_trace(
            go.Scattergl(
                x=done[x], y=done[y], mode="markers", name=f"{label}: trials", legendgroup=label,
                marker={"color": color, "opacity": 0.25, "size": 5}, customdata=done["trial_number"],
                hovertemplate=f"{label}: trial %{{customdata}}<extra></extra>",
            )
        )  # fmt: skip
        front = done[pareto_front(done, x, y)].sort_values(x) if len(done) else done
        fig.add_trace(
            go.Scatter(
                x=front[x], y=front[y], mode="lines+markers", name=f"{label}: Pareto front", legendgroup=label,
                line={"color": color, "width": 3}, customdata=front["trial_number"],
                hovertemplate=f"{label}: trial %{{customdata}} (front)<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"Pareto fronts: {LABELS.get(x, x)} vs {LABELS.get(y, y)}",
        xaxis_title=LABELS.get(x, x),
        yaxis_title=LABELS.get(y, y),
    )
    return fig


def compare_figure(
    intervals: pd.DataFrame,
    rocs: Mapping[str, tuple[Sequence[float], Sequence[float], float | None]],
    curves: Mapping[str, tuple[pd.DataFrame, int | None]],
) -> go.Figure:
    """Several trials in one chart of three panels, one colour per trial throughout (its legend
    entry shows or hides it in every panel): the COVID figures with their 95% intervals, the ROC
    curves (COVID vs rest) and the learning curves (validation loss solid, training dotted)."""
    titles = ("COVID figures, 95% intervals", "ROC, COVID vs rest", "Learning curves (validation solid)")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, column_widths=[0.36, 0.3, 0.34])
    labels = list(dict.fromkeys([*intervals["trial"].astype(str), *rocs, *curves]))
    for k, label in enumerate(labels):
        color = PALETTE[k % len(PALETTE)]
        shown = {"legendgroup": label, "name": f"trial {label}"}
        rows = intervals[intervals["trial"].astype(str) == label]
        first = True
        if not rows.empty:
            fig.add_trace(
                go.Scatter(
                    x=rows["figure"], y=rows["value"], mode="markers", marker={"color": color, "size": 8},
                    error_y={"type": "data", "symmetric": False, "array": rows["high"] - rows["value"],
                             "arrayminus": rows["value"] - rows["low"]},
                    showlegend=first, **shown,
                ),
                row=1, col=1,
            )  # fmt: skip
            first = False
        if label in rocs:
            fpr, tpr, auc = rocs[label]
            fig.add_trace(
                go.Scatter(
                    x=list(fpr), y=list(tpr), mode="lines", line={"color": color}, showlegend=first,
                    hovertemplate=f"trial {label}" + ("" if auc is None else f" (AUC {auc:.3f})") + "<extra></extra>",
                    **shown,
                ),
                row=1, col=2,
            )  # fmt: skip
            first = False
        if label in curves:
            epochs, pruned_at = curves[label]
            fig.add_trace(
                go.Scatter(x=epochs["epoch"], y=epochs["val_loss"], mode="lines+markers", line={"color": color},
                           showlegend=first, **shown),
                row=1, col=3,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(x=epochs["epoch"], y=epochs["loss"], mode="lines", line={"color": color, "dash": "dot"},
                           showlegend=False, legendgroup=label, name=f"trial {label}: training"),
                row=1, col=3,
            )  # fmt: skip
            if pruned_at is not None and len(epochs):
                last = epochs.iloc[-1]
                fig.add_trace(
                    go.Scatter(x=[last["epoch"]], y=[last["val_loss"]], mode="markers", showlegend=False,
                               marker={"symbol": "x", "size": 12, "color": color}, legendgroup=label,
                               name=f"trial {label}: pruned"),
                    row=1, col=3,
                )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance"),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="1 - specificity", row=1, col=2)
    fig.update_yaxes(title_text="sensitivity", row=1, col=2)
    fig.update_xaxes(title_text="epoch", row=1, col=3)
    fig.update_yaxes(title_text="loss", row=1, col=3)
    fig.update_layout(
        title="Validation: figures, ROC and learning curves",
        height=440,
        legend={"orientation": "h"},
        scattermode="group",
    )
    return fig
