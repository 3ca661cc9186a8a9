"""The Compare page (``/compare?study=S&trials=3,7,9``): 2 to 4 trials of one study side by side.

Configurations with the differences marked; validation figures with their 95% intervals; the
validation, test and external rows each in their own column (only validation ranks); ROC and
learning curves overlaid; the Grad-CAM overlays of the same validation images in one grid
(trials of the same scheme and split store the same images: matched by file name).
"""

from __future__ import annotations

import streamlit as st

from leaderboard import charts
from leaderboard import comparison as C
from leaderboard import data as D
from leaderboard.comparison import Trial, trial_label, trial_link
from leaderboard.views import _board as B

OVERLAY_PX = 220


def _links(trials: list[Trial]) -> str | None:
    return ",".join(trial_link(t) for t in trials) if C.COMPARE_MIN <= len(trials) <= C.COMPARE_MAX else None


def _pick(url: str, study: str) -> list[Trial]:
    """The trials of the address (``trials=3,7,9``), or those chosen in the picker; a bad address
    is one sentence, and the picker stays to choose again."""
    known = B.trial_keys(url, study)
    key = f"compare-{study}"
    wanted = st.query_params.get("trials")
    if wanted is not None:
        try:
            linked = C.parse_trials(wanted, set(known), study)
        except ValueError as exc:
            st.error(B.escape(str(exc)))
        else:
            if linked != st.session_state.get(key):
                st.session_state[key] = linked
    if not all(t in known for t in st.session_state.get(key, [])):
        st.session_state[key] = []
    chosen: list[Trial] = st.multiselect(
        f"Trials to compare ({C.COMPARE_MIN} to {C.COMPARE_MAX})",
        known,
        key=key,
        max_selections=C.COMPARE_MAX,
        format_func=trial_label,
        on_change=B.sync_param("trials", key, _links),
        placeholder="Choose trials by number",
    )
    if len(chosen) < C.COMPARE_MIN:
        top = B.top_trials(url, study, 3)
        st.info(
            f"Choose {C.COMPARE_MIN} to {C.COMPARE_MAX} trials above, or tick them in the Ranking table, to see "
            "their configurations, figures, curves and Grad-CAM overlays side by side."
        )
        if len(top) >= C.COMPARE_MIN:
            names = ", ".join(trial_label(t) for t in top)
            B.link("compare", f"Compare the top-ranked trials {names}", study=study, trials=_links(top) or "")
        return []
    st.query_params["trials"] = _links(chosen) or ""
    return chosen


def _heads(url: str, study: str, details: dict[str, D.TrialDetail], trials: list[Trial]) -> None:
    for column, (label, detail), trial in zip(st.columns(len(details)), details.items(), trials, strict=True):
        with column:
            B.link("trial", f"Trial {label}", study=study, trial=trial_link(trial))
            config = detail.config
            words = [str(config.get(k)) for k in ("backbone", "scheme", "input_region") if config.get(k) is not None]
            st.caption(B.escape(f"{detail.state} · {' · '.join(words)}"))
            st.markdown(f"Review: {B.verdict_text(B.verdict_of(url, study, trial))}")


def _configs(details: dict[str, D.TrialDetail]) -> None:
    st.subheader("Configuration")
    table = C.config_diff({label: d.config for label, d in details.items()})
    differ = int(table["differs"].sum())
    st.caption(f"{differ} of {len(table)} parameters differ: marked, and listed first.")
    styled = table.style.apply(
        lambda row: ["background-color: rgba(255, 189, 69, 0.35)" if row["differs"] else "" for _ in row], axis=1
    )
    st.dataframe(
        styled,
        hide_index=True,
        column_config={"differs": st.column_config.CheckboxColumn("differs", width=64)},
        height="content",
        key="compare-config",
    )


def _figures(details: dict[str, D.TrialDetail]) -> None:
    st.subheader("Figures (validation) with their 95% intervals, ROC and learning curves")
    st.dataframe(C.metric_table(details), hide_index=True, height="content", key="compare-figures")
    rocs = {label: (*d.roc, d.metrics.get("covid_auc")) for label, d in details.items() if d.roc is not None}
    curves = {label: (d.epochs, d.pruned_at_epoch) for label, d in details.items() if not d.epochs.empty}
    try:
        st.plotly_chart(charts.compare_figure(C.interval_frame(details), rocs, curves), key="compare-chart")
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # stored values that do not fit a chart
        st.warning(B.escape(f"A chart could not be drawn from these trials' stored values ({exc})."))
    if not rocs:
        st.caption("None of these trials has a stored ROC curve (pruned and failed trials have none).")


def _splits(details: dict[str, D.TrialDetail]) -> None:
    st.subheader("Validation, test and external rows")
    tables = C.split_tables(details)
    st.caption(
        "Validation chose each trial and its COVID threshold; the test split and external datasets are measured "
        "once, at that threshold, and never used to rank. A trial without such a row has no column there."
    )
    for column, (kind, table) in zip(st.columns(len(tables)), tables.items(), strict=True):
        with column:
            st.markdown(f"**{B.escape(kind)}**")
            st.dataframe(table, height="content", key=f"split-{kind}")


def _overlays(url: str, study: str, details: dict[str, D.TrialDetail]) -> None:
    st.subheader("Grad-CAM on the same validation images")
    grid = C.overlay_grid({label: d.artifacts for label, d in details.items()})
    if not grid:
        st.caption("None of these trials has stored Grad-CAM overlays (pruned and failed trials have none).")
        return
    shared = sum(row.shared for row in grid)
    st.caption(
        f"{shared} validation image(s) that every trial was read on, then {len(grid) - shared} that only some "
        "were (another scheme or split); each trial's COVID heatmap, matched by file name."
    )
    ids = [a for row in grid for a in row.artifacts.values() if a is not None]
    images, problems = B.overlays(url, study, ids)
    by_id = dict(zip(ids, images, strict=True))
    labels = list(details)
    with st.container(key="compare-overlays"):
        for column, label in zip(st.columns(len(labels)), labels, strict=True):
            column.markdown(f"**Trial {B.escape(label)}**")
        for row in grid:
            for column, label in zip(st.columns(len(labels)), labels, strict=True):
                with column:
                    artifact = row.artifacts[label]
                    image = by_id.get(artifact) if artifact is not None else None
                    if image is not None:
                        st.image(image, caption=row.image, width=OVERLAY_PX)
                    else:
                        st.caption(B.escape(f"{row.image}: not stored for this trial"))
    for problem in problems[:3]:
        st.warning(B.escape(problem))


def render() -> None:
    board = B.board()
    if board is None:
        return
    url, study = board.url, board.study
    if not B.trial_keys(url, study):
        st.info(f"Study {B.escape(study)} has no trial with stored results yet: they appear as workers record them.")
        return
    trials = _pick(url, study)
    if not trials:
        return
    found = {trial_label(t): B.detail(url, study, t) for t in trials}
    details = {label: d for label, d in found.items() if d is not None}
    trials = [t for t in trials if found[trial_label(t)] is not None]
    if len(details) < C.COMPARE_MIN:
        st.warning("Fewer than two of these trials have stored results; choose others.")
        return
    _heads(url, study, details, trials)
    for label, detail in details.items():
        for problem in detail.problems:
            st.warning(B.escape(f"Trial {label}: {problem}"))
    _configs(details)
    _figures(details)
    _splits(details)
    _overlays(url, study, details)


if __name__ == "__main__":
    render()
