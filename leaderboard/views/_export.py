"""The export buttons of the Ranking and Trial pages (they write: only with ``--allow-export``)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from leaderboard import data as D
from leaderboard.exports import export_allowed, run_export
from leaderboard.views import _board as B

__all__ = ["allowed", "export_button", "export_ensemble", "export_trial"]


def allowed() -> bool:
    """The export button writes to the database: off unless the page was started to offer it."""
    return export_allowed(sys.argv[1:])


def export_trial(url: str, study: str, trial: int) -> None:
    export_button(url, study, ["--trial", str(trial)], f"Export trial {trial} (evaluates it once on the test split)")


def export_ensemble(url: str, study: str) -> None:
    st.subheader("Export")
    st.caption(
        "The default export: greedy ensemble selection (Caruana et al. 2004) on the stored validation "
        "probabilities of the top trials with a saved model, one averaged model, a COVID threshold chosen on "
        "validation; measured once on the test split."
    )
    frame, _ = B.verdicts(url, study)
    marked = frame[frame["verdict"] == "shortcut"]
    if not marked.empty:
        pairs = zip(marked["engine"], marked["trial"], strict=True)
        names = ", ".join(B.trial_label((str(e), int(t))) for e, t in pairs)
        st.caption(
            f"Never chosen by the default export, nor in its ensemble pool: trial(s) {B.escape(names)}, which a "
            "reviewer marked as reading a shortcut (the export names each one it skips and why)."
        )
    if not allowed():
        return
    pool = int(st.number_input("Candidates (top trials with a saved model)", 1, 50, 10, key=f"pool-{study}"))
    export_button(url, study, ["--ensemble", str(pool)], f"Export the ensemble of the top {pool}")


def export_button(url: str, study: str, choice: list[str], label: str) -> None:
    """Package with ``search.export`` in a child process: one at a time per model, time-limited, kept on disk."""
    if not allowed():
        st.caption(
            "Export is off on this page: it evaluates the model once on the test split and writes that row to the "
            "results database. Start the leaderboard with --allow-export (and a database role that may write) "
            f"to offer it here, or run: python -m search.export --study {D.escape_markdown(study)} "
            f"{' '.join(choice)} --out DIR"
        )
        return
    key = f"export-{study}-{'-'.join(choice)}"
    if st.button(label, key=f"button-{key}", help="Writes the test-split row of this model to the database."):
        with st.spinner("Exporting: test-split evaluation, Keras, SavedModel, TFLite, model card"):
            result = run_export(url, study, choice, D.study_version(B.engine(url), study))
        if result.archive is None:
            st.error(D.escape_markdown(result.message or "The export failed."))
        else:
            st.session_state[key] = str(result.archive)  # a path: the archive stays on disk, not in the session
            if result.cached:
                st.caption("The study has not changed since this model was last exported: that archive is reused.")
    archive = Path(st.session_state.get(key, ""))
    if key in st.session_state and archive.is_file():
        st.download_button(
            "Download the export (.zip)", data=archive.read_bytes(), file_name=f"{study}-{'-'.join(choice)}.zip"
        )
