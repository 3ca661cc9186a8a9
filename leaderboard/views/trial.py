"""The Trial page (``/trial?study=S&trial=N``, ``trial=keras-tuner:N`` for the other engine): one
trial's configuration, figures per split, curves, Grad-CAM overlays, the validation images it
gets wrong, its reviews (and, on a page started with ``--reviewer NAME``, the review form)."""

from __future__ import annotations

import streamlit as st

from leaderboard import charts
from leaderboard import data as D
from leaderboard.comparison import COMPARE_MAX, Trial, parse_trial, trial_label, trial_link
from leaderboard.views import _board as B
from leaderboard.views._export import export_trial
from search import SearchError
from search.store import NOTE_MAX_CHARS, VERDICTS

THUMBNAIL_PX = 180


def _pick(url: str, study: str) -> Trial | None:
    """The trial of the address when it names one of the study's, else the top-ranked one; a bad
    address is said in one sentence (and the top-ranked trial shown)."""
    trials = B.trial_keys(url, study)
    if not trials:
        st.info(f"Study {B.escape(study)} has no trial with stored results yet: they appear as workers record them.")
        return None
    wanted = st.query_params.get("trial")
    linked = parse_trial(wanted) if wanted else None
    if wanted and linked not in trials:
        st.error(
            B.escape(
                f"`trial` must name a trial of study {study!r} with stored results (a number, or ENGINE:NUMBER), "
                f"but got {wanted!r}; the top-ranked trial is shown instead."
            )
        )
        linked = None
    key = f"trial-{study}"
    if linked is not None and linked != st.session_state.get(key):
        st.session_state[key] = linked
    if st.session_state.get(key) not in trials:
        top = B.top_trials(url, study, 1)
        st.session_state[key] = top[0] if top else trials[0]
    chosen: Trial = st.selectbox(
        "Trial", trials, key=key, format_func=trial_label, on_change=B.sync_param("trial", key, trial_link)
    )
    st.query_params["trial"] = trial_link(chosen)
    return chosen


def _figures(detail: D.TrialDetail) -> None:
    left, right = st.columns(2)
    with left:
        st.dataframe(D.config_table(detail.config), hide_index=True)
        st.dataframe(detail.by_split)
        if len(detail.by_split.columns) > 1:
            st.caption(
                "Validation chose the trial and its COVID threshold; the test split and external datasets are "
                "measured once, at that threshold, and never used to rank."
            )
        for note in detail.external_notes:
            st.caption(D.escape_markdown(note))
        if not detail.per_class.empty:
            st.dataframe(detail.per_class)
        if not detail.folds.empty:
            st.caption("Cross-validated: each figure's mean and spread over the folds.")
            st.dataframe(detail.folds)
    with right:
        try:
            if not detail.epochs.empty:
                st.plotly_chart(charts.learning_curve_figure(detail.epochs, detail.pruned_at_epoch))
            if detail.confusion is not None:
                st.plotly_chart(charts.confusion_figure(detail.confusion, detail.class_names))
            if detail.roc is not None:
                st.plotly_chart(charts.roc_figure(*detail.roc, detail.metrics.get("covid_auc")))
        except (ValueError, TypeError, IndexError) as exc:  # stored values that do not fit a chart
            st.warning(D.escape_markdown(f"A chart of this trial could not be drawn from its stored values ({exc})."))


def _overlays(url: str, study: str, detail: D.TrialDetail) -> None:
    st.subheader("Grad-CAM on validation images")
    stored = [a for a in detail.artifacts if a["kind"] == "gradcam"]
    if not stored:
        st.caption("No Grad-CAM overlays stored for this trial (pruned and failed trials have none).")
        return
    images, problems = B.overlays(url, study, [str(a["artifact_id"]) for a in stored])
    shown = [(image, str(a["filename"])) for image, a in zip(images, stored, strict=True) if image is not None]
    if shown:
        st.image([i for i, _ in shown], caption=[c for _, c in shown], width=200)
    for problem in problems[:3]:
        st.warning(D.escape_markdown(problem))


def _mistakes(url: str, study: str, trial: Trial) -> None:
    st.subheader("What it gets wrong")
    frame, summary = B.mistakes(url, study, trial)
    for problem in frame.attrs.get("problems", [])[:3]:
        st.warning(D.escape_markdown(problem))
    if summary is not None:
        counts = (
            f"{summary.missed_covid} missed COVID, {summary.false_covid} false COVID, {summary.other} other "
            f"confusions of {summary.n} {summary.images} images"
        )
        threshold = "argmax" if summary.threshold is None else f"COVID threshold {summary.threshold:.4f}"
        st.caption(D.escape_markdown(f"{summary.text} ({counts}, at its {threshold}; missed COVID first)."))
    if frame.empty:
        if summary is None:
            st.caption(
                "No misclassified validation images stored for this trial (pruned, failed, or recorded before "
                "they were kept)."
            )
        return
    images, problems = B.overlays(url, study, [str(a) for a in frame["artifact_id"]])
    with st.container(key="mistakes"):
        for start in range(0, len(frame), 4):
            for column, (_, row), image in zip(
                st.columns(4), frame.iloc[start : start + 4].iterrows(), images[start : start + 4], strict=False
            ):
                with column:
                    probabilities = ", ".join(f"{k} {float(v):.2f}" for k, v in dict(row["probabilities"]).items())
                    text = (
                        f"{row['what']}: {row['label']} → {row['predicted']}, COVID probability "
                        f"{float(row['covid_probability']):.2f} ({probabilities}); {row['path']}"
                    )
                    if image is not None:
                        st.image(image, width=THUMBNAIL_PX)
                    st.caption(D.escape_markdown(text))
    for problem in problems[:3]:
        st.warning(D.escape_markdown(problem))


def _reviews(url: str, study: str, trial: Trial, reviewer: str | None) -> None:
    st.subheader("Review")
    history = B.history(url, study, trial)
    if history.empty:
        st.caption("Nobody has reviewed this trial yet.")
    else:
        table = history.assign(verdict=[B.VERDICT_WORDS.get(v, v) for v in history["verdict"]])
        st.dataframe(table[["at", "reviewer", "verdict", "note"]], hide_index=True, key=f"history-{trial}")
    if reviewer is None:
        st.caption(
            "This page is read-only. To record a verdict (looks at the lungs, reads a shortcut, unsure), start the "
            "leaderboard with --reviewer NAME and a database role that may insert into cxr_reviews."
        )
        return
    with st.form(key=f"review-{study}-{trial_link(trial)}", clear_on_submit=True):
        verdict = st.radio("Verdict", VERDICTS, format_func=lambda v: B.VERDICT_WORDS[v], horizontal=True, index=None)
        note = st.text_area("Note", max_chars=NOTE_MAX_CHARS, placeholder="What you saw (optional)")
        submitted = st.form_submit_button(f"Record the verdict as {reviewer}")
    if submitted:
        if verdict is None:
            st.error("A verdict must be chosen (looks at the lungs, reads a shortcut or unsure), but none was.")
            return
        try:
            B.review_writer(url, reviewer).record(study, trial[1], verdict, note or "", trial[0])
        except SearchError as exc:
            st.error(D.escape_markdown(str(exc)))
            return
        B.verdicts.clear()
        B.history.clear()
        st.rerun()


def render() -> None:
    board = B.board()
    if board is None:
        return
    url, study = board.url, board.study
    trial = _pick(url, study)
    if trial is None:
        return
    detail = B.detail(url, study, trial)
    if detail is None:
        st.warning(f"Trial {trial_label(trial)} has no stored result.")
        return
    heading = f"**Trial {trial_label(trial)}** — {D.escape_markdown(detail.state)}"
    st.markdown(heading + (f": {D.escape_markdown(detail.error)}" if detail.error else ""))
    st.markdown(f"Review: {B.verdict_text(B.verdict_of(url, study, trial))}")
    others = [t for t in B.top_trials(url, study, COMPARE_MAX) if t != trial][: COMPARE_MAX - 2]
    if others:
        names = ", ".join(trial_label(t) for t in others)
        B.link(
            "compare",
            f"Compare with the top-ranked trial(s) {names}",
            study=study,
            trials=",".join(trial_link(t) for t in [trial, *others]),
        )
    for problem in detail.problems:
        st.warning(D.escape_markdown(problem))
    _figures(detail)
    _overlays(url, study, detail)
    _mistakes(url, study, trial)
    _reviews(url, study, trial, board.reviewer)
    models = [a for a in detail.artifacts if a["kind"] == "model"]
    if models and detail.state == "COMPLETE":
        export_trial(url, study, detail.trial_number)
    else:
        st.caption("No saved model for this trial (models are kept for trials that entered the top at the time).")


if __name__ == "__main__":
    render()
