"""The Ranking and Trial pages through Streamlit's AppTest (no browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.leaderboard_tests.conftest import APP, WINNER, open_page


def _app(
    monkeypatch: pytest.MonkeyPatch, url: str, study: str = "demo", allow_export: bool = False, page: str = "ranking"
) -> AppTest:
    return open_page(monkeypatch, url, page, study=study, allow_export=allow_export)


def _top(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "Top-ranked" in m.value or "No trial matches" in m.value)


def test_the_page_shows_the_winner_and_the_rule(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = _app(monkeypatch, study_db)
    assert not at.exception
    assert _top(at).startswith(f"**Top-ranked: trial {WINNER} (")
    assert any(
        "Ranked by COVID sensitivity @ target ↓, then lung focus ↓, then COVID AUC ↓" in c.value for c in at.caption
    )
    assert any("threshold is chosen on its validation images for COVID specificity 0.95" in c.value for c in at.caption)
    assert len(at.dataframe) >= 1


def test_changing_the_rule_and_filters_reranks(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = _app(monkeypatch, study_db)
    at.multiselect[0].set_value(["loss"]).run()
    assert not at.exception
    assert any("Ranked by validation loss ↑" in c.value for c in at.caption)
    at.multiselect[1].set_value(["DenseNet121"]).run()
    assert "(DenseNet121," in _top(at)


def test_a_study_without_lung_focus_says_so(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = _app(monkeypatch, study_db, study="second")
    assert not at.exception
    assert "lung focus —" in _top(at)
    assert any("Lung focus is not measured for these trials yet" in c.value for c in at.caption)


CHART_TITLES = {
    "sensitivity": "COVID sensitivity @ target vs lung focus",
    "history": "Optimization History Plot",
    "importances": "Hyperparameter Importances",
    "parallel": "Parallel Coordinate Plot",
    "timeline": "Timeline Plot",
}


@pytest.mark.parametrize("chart", list(CHART_TITLES))
def test_every_chart_draws(monkeypatch: pytest.MonkeyPatch, study_db: str, chart: str) -> None:
    import plotly.io

    at = _app(monkeypatch, study_db)
    next(s for s in at.selectbox if s.label == "Chart").set_value(chart).run()
    assert not at.exception
    assert not at.info, at.info[0].value  # "This chart needs more finished trials" instead of the chart
    drawn = at.get("plotly_chart")
    assert drawn, "a Plotly chart on the page"
    figure = plotly.io.from_json(drawn[0].proto.spec)  # the first one is the chosen chart; the trial's follow
    assert figure.layout.title.text == CHART_TITLES[chart]
    points = sum(len(trace.x) for trace in figure.data if getattr(trace, "x", None) is not None)
    assert points > 0, f"the {chart} chart has traces with data, but got {[t.type for t in figure.data]}"


def test_an_empty_database_explains_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from search.store import ResultStore

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    ResultStore(url).create_schema()
    at = _app(monkeypatch, url)
    assert not at.exception
    assert "No trials yet" in at.info[0].value


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://alice:s3cret@127.0.0.1:1/nowhere",
        "postgresql+psycopg//alice:s3cret@127.0.0.1:1/nowhere",  # a typo: no URL at all
        "postgresql+psycopg://alice:s3cret@127.0.0.1:54x2/nowhere",  # a port that is not a number
        "postgresql+psycopg://alice@127.0.0.1:1/nowhere?password=s3cret",
    ],
)
def test_a_password_never_reaches_the_page(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    at = _app(monkeypatch, url)
    assert not at.exception
    page = " ".join([c.value for c in at.caption] + [e.value for e in at.error])
    assert "s3cret" not in page and "***" in page
    assert "The results database must be reachable" in at.error[0].value


def test_export_is_off_unless_allowed(monkeypatch: pytest.MonkeyPatch, searched: Path) -> None:
    at = _app(monkeypatch, f"sqlite:///{searched / 'optuna.db'}", study="cxr-search", page="trial")
    assert not at.exception
    assert not [b for b in at.button if b.label.startswith("Export")]
    assert any("Export is off on this page" in c.value and "--allow-export" in c.value for c in at.caption)


def test_the_export_button_packages_the_top_trial_once(
    monkeypatch: pytest.MonkeyPatch, searched: Path, tmp_path: Path
) -> None:
    import io
    import zipfile

    monkeypatch.setenv("CXR_EXPORT_CACHE", str(tmp_path))
    url = f"sqlite:///{searched / 'optuna.db'}"
    top = _top(_app(monkeypatch, url, study="cxr-search")).split("trial ")[1].split(" ")[0]
    at = _app(monkeypatch, url, study="cxr-search", allow_export=True, page="trial")
    assert not at.exception
    assert any(m.value.startswith(f"**Trial {top}**") for m in at.markdown), "the trial page opens on the top trial"
    button = next(b for b in at.button if b.label.startswith("Export trial"))
    assert button.label == f"Export trial {top} (evaluates it once on the test split)"
    button.click().run(timeout=300)
    assert not at.exception
    assert not at.error, at.error[0].value if at.error else ""
    archive = Path(at.session_state[f"export-cxr-search---trial-{top}"])
    assert archive.parent == tmp_path and archive.read_bytes()[:2] == b"PK", "a zip archive on disk"
    names = zipfile.ZipFile(io.BytesIO(archive.read_bytes())).namelist()
    assert {"model.keras", "model.tflite", "model_card.json", "MODEL_CARD.md"} <= set(names)
    made = archive.stat().st_mtime_ns
    next(b for b in at.button if b.label.startswith("Export trial")).click().run(timeout=300)
    assert any("that archive is reused" in c.value for c in at.caption)
    assert archive.stat().st_mtime_ns == made, "the unchanged study is not exported again"


def test_the_specificity_floor_is_a_sidebar_setting(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = _app(monkeypatch, study_db)
    assert any("below argmax COVID specificity 0.50 rank after the others" in c.value for c in at.caption)
    next(s for s in at.slider if s.label == "Minimum COVID specificity (argmax)").set_value(0.95).run()
    assert not at.exception
    assert any("below argmax COVID specificity 0.95 rank after the others" in c.value for c in at.caption)
    next(s for s in at.slider if s.label == "Minimum COVID specificity (argmax)").set_value(0.0).run()
    assert not any("specificity" in c.value for c in at.caption if c.value.startswith("Ranked by"))


def test_the_ensemble_export_packages_the_selected_members(
    monkeypatch: pytest.MonkeyPatch, searched: Path, tmp_path: Path
) -> None:
    import json
    import zipfile

    monkeypatch.setenv("CXR_EXPORT_CACHE", str(tmp_path))
    at = _app(monkeypatch, f"sqlite:///{searched / 'optuna.db'}", study="cxr-search", allow_export=True)
    next(n for n in at.number_input if n.label.startswith("Candidates")).set_value(2).run()
    button = next(b for b in at.button if b.label.startswith("Export the ensemble"))
    assert button.label == "Export the ensemble of the top 2"
    button.click().run(timeout=300)
    assert not at.exception and not at.error, at.error[0].value if at.error else ""
    archive = zipfile.ZipFile(at.session_state["export-cxr-search---ensemble-2"])
    card = json.loads(archive.read("model_card.json"))
    assert card["selection"]["pool"] and len(card["selection"]["pool"]) == 2
    assert sum(m["weight"] for m in card["members"]) == pytest.approx(1.0)


def test_a_hostile_or_corrupt_trial_row_leaves_the_page_standing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.leaderboard_tests.test_data import _hostile_study

    url = _hostile_study(tmp_path)
    at = _app(monkeypatch, url, study="hostile")
    assert not at.exception
    assert _top(at).startswith("**Top-ranked: trial 99 (\\!\\[x\\]")
    at = _app(monkeypatch, url, study="hostile", page="trial")
    assert not at.exception
    assert any("The column config\\_json of this trial must hold JSON" in w.value for w in at.warning)
    heading = next(m.value for m in at.markdown if m.value.startswith("**Trial 99**"))
    assert "\\[click\\]\\(http\\://attacker.example\\)" in heading


def test_the_trial_page_serves_overlays_from_the_artifact_folder_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import optuna

    from search.space import TrialConfig
    from search.store import ArtifactRecord, ResultStore, config_row
    from tests.leaderboard_tests.test_data import _hostile_study

    url = _hostile_study(tmp_path)
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "good-id").write_bytes(_png())
    os.mkfifo(folder / "fifo-id")
    optuna.load_study(study_name="hostile", storage=url).set_user_attr("cxr_artifacts", str(folder))
    row = config_row("hostile", 100, TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three"), "COMPLETE")
    row.op_sensitivity, row.op_specificity, row.covid_sensitivity, row.covid_specificity = 1.0, 1.0, 1.0, 1.0
    row.lung_focus = 1.0  # ranks first, so the trial page opens on it
    ids = ["good-id", "../../../../etc/passwd", "/etc/passwd", "fifo-id"]
    ResultStore(url).record(row, artifacts=[ArtifactRecord("gradcam", i, f"{n}.png", 10) for n, i in enumerate(ids)])
    at = _app(monkeypatch, url, study="hostile", page="trial")
    assert not at.exception
    images = [e for e in at.main if type(e).__name__ == "Image"]
    assert len(images) == 1 and len(images[0].proto.imgs) == 1, "only the overlay inside the folder is shown"
    warnings = " ".join(w.value for w in at.warning)
    assert warnings.count("must be a bare file name") == 2 and "must be a regular file" in warnings


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


def test_the_table_downloads_and_the_configuration_is_a_table(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = _app(monkeypatch, study_db)
    assert not at.exception
    labels = [e.proto.label for e in at.main if type(e).__name__ == "DownloadButton"]
    assert "Download the ranked table (.csv, every page)" in labels
    at = _app(monkeypatch, study_db, page="trial")
    config = next(d.value for d in at.dataframe if list(d.value.columns) == ["parameter", "value"])
    assert {"backbone", "scheme", "learning_rate", "freeze_depth"} <= set(config["parameter"])


def test_a_trial_has_an_address(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = open_page(monkeypatch, study_db, "trial", trial="42")
    assert not at.exception
    assert any(m.value.startswith("**Trial 42**") for m in at.markdown)
    assert at.query_params["trial"] == "42"
    plain = open_page(monkeypatch, study_db, "trial")  # no trial in the address: the top-ranked one, written back
    assert any(m.value.startswith(f"**Trial {WINNER}**") for m in plain.markdown)
    assert plain.query_params["trial"] == str(WINNER)


def test_an_address_from_before_the_pages_opens_the_trial_page(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    monkeypatch.setenv("CXR_STORAGE", study_db)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"], at.query_params["trial"] = "demo", "42"  # /?study=demo&trial=42
    at.run()
    assert not at.exception
    assert any(m.value.startswith("**Trial 42**") for m in at.markdown)
    assert dict(at.query_params) == {"study": "demo", "trial": "42"}
