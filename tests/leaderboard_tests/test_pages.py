"""The leaderboard's pages (Ranking, Trial, Compare, Studies) through Streamlit's AppTest: their
addresses, what a bad address says, and what each page shows."""

from __future__ import annotations

from pathlib import Path

import plotly.io
import pytest
from streamlit.testing.v1 import AppTest

from leaderboard import data as D
from leaderboard.synthetic import make_synthetic_study
from tests.leaderboard_tests.conftest import PAGES, WINNER, open_page, unescaped

TOP4 = "17,47,43,161"  # the study's four top-ranked trials: three of the binary scheme, one of three classes


def _images(at: AppTest) -> list[int]:
    """Pictures per image element of the page's main area."""
    return [len(e.proto.imgs) for e in at.main if type(e).__name__ == "Image"]


def _figures(at: AppTest) -> list[plotly.graph_objects.Figure]:
    return [plotly.io.from_json(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_the_top_four_are_what_the_tests_say(study_db: str) -> None:
    frame, _ = D.ranking(D.read_only_engine(study_db), "demo", page_size=4)
    assert ",".join(str(n) for n in frame["trial_number"]) == TOP4
    assert list(frame["scheme"]) == ["binary", "binary", "binary", "three"]


@pytest.mark.parametrize(
    ("page", "params", "address"),
    [
        ("ranking", {}, {"study": "demo"}),
        ("trial", {}, {"study": "demo", "trial": str(WINNER)}),
        ("trial", {"trial": "42"}, {"study": "demo", "trial": "42"}),
        ("compare", {"trials": "17,3,9"}, {"study": "demo", "trials": "17,3,9"}),
        ("studies", {}, {"study": "demo", "studies": "demo,second"}),
        ("studies", {"studies": "second,demo"}, {"study": "demo", "studies": "second,demo"}),
    ],
)
def test_every_view_has_an_address(
    monkeypatch: pytest.MonkeyPatch, study_db: str, page: str, params: dict[str, str], address: dict[str, str]
) -> None:
    at = open_page(monkeypatch, study_db, page, query=params)
    assert not at.exception
    assert not at.error, at.error[0].value if at.error else ""
    assert dict(at.query_params) == address


@pytest.mark.parametrize(
    ("page", "params", "message"),
    [
        ("compare", {"trials": "17"},
         "`trials` must list 2 to 4 trials separated by commas (e.g. trials=3,7,9), but got 1: '17'."),
        ("compare", {"trials": "1,2,3,4,6"},
         "`trials` must list 2 to 4 trials separated by commas (e.g. trials=3,7,9), but got 5: '1,2,3,4,6'."),
        ("compare", {"trials": "17,999"},
         "`trials` must name trials of study 'demo' with stored results, but trial 999 has none."),
        ("compare", {"trials": "17,seventeen"},
         "`trials` must be trial numbers (or ENGINE:NUMBER) separated by commas (e.g. trials=3,7,9), but got "
         "'seventeen'."),
        ("compare", {"trials": "17,17"}, "`trials` must name different trials, but got trial 17 twice."),
        ("trial", {"trial": "999"},
         "`trial` must name a trial of study 'demo' with stored results (a number, or ENGINE:NUMBER), but got "
         "'999'; the top-ranked trial is shown instead."),
        ("trial", {"trial": "keras-tuner:3"},
         "`trial` must name a trial of study 'demo' with stored results (a number, or ENGINE:NUMBER), but got "
         "'keras-tuner:3'; the top-ranked trial is shown instead."),
        ("studies", {"studies": "demo"},
         "`studies` must name two studies separated by a comma (e.g. studies=A,B), but got 'demo'."),
        ("studies", {"studies": "demo,elsewhere"},
         "`studies` must name studies of this database (NAME, or NAME@ENGINE for one engine's trials), but got "
         "'elsewhere'."),
    ],
)  # fmt: skip
def test_a_bad_address_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, study_db: str, page: str, params: dict[str, str], message: str
) -> None:
    at = open_page(monkeypatch, study_db, page, query=params)
    assert not at.exception
    assert [unescaped(e.value) for e in at.error] == [message]


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_database_says_what_to_do_on_every_page(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str
) -> None:
    from search.store import ResultStore

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    ResultStore(url).create_schema()
    at = open_page(monkeypatch, url, page)
    assert not at.exception
    assert [i.value.split(".")[0] for i in at.info] == ["No trials yet"]
    assert "python -m search.launch --trials 20 --data PATH" in at.info[0].value


def test_the_compare_page_without_trials_says_what_to_do(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = open_page(monkeypatch, study_db, "compare")
    assert not at.exception and not at.error
    assert at.info[0].value.startswith("Choose 2 to 4 trials above, or tick them in the Ranking table")
    links = [e.proto for e in at.main if type(e).__name__ == "PageLink"]
    assert [link.label for link in links] == ["Compare the top-ranked trials 17, 47, 43"]
    assert links[0].query_string == "study=demo&trials=17%2C47%2C43"
    at.multiselect[0].set_value([("optuna", 17), ("optuna", 3)]).run()  # chosen on the page: written to the address
    assert at.query_params["trials"] == "17,3"
    assert any(m.value == "**Trial 17**" for m in at.markdown)


def test_four_trials_side_by_side(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = open_page(monkeypatch, study_db, "compare", trials=TOP4)
    assert not at.exception and not at.error
    labels = TOP4.split(",")
    config = next(d.value for d in at.dataframe if "differs" in d.value.columns)
    assert list(config.columns) == ["parameter", "differs", *labels]
    differing = config[config["differs"]]["parameter"].tolist()
    assert config["parameter"].tolist()[: len(differing)] == differing, "the differences come first"
    assert {"backbone", "scheme", "learning_rate"} <= set(differing)
    assert any(f"{len(differing)} of {len(config)} parameters differ" in c.value for c in at.caption)
    figures = next(d.value for d in at.dataframe if "figure" in d.value.columns)
    sensitivity = figures[figures["figure"] == "COVID sensitivity @ target [95% CI]"].iloc[0]
    assert all(sensitivity[label].count("[") == 1 for label in labels), sensitivity
    assert any(m.value == "**validation**" for m in at.markdown)
    (chart,) = _figures(at)  # one chart of three panels: figures with intervals, ROC curves, learning curves
    assert chart.layout.title.text == "Validation: figures, ROC and learning curves"
    panels = {"x": "intervals", "x2": "roc", "x3": "learning"}
    drawn: dict[str, list[str]] = {}
    for trace in chart.data:
        drawn.setdefault(panels[trace.xaxis or "x"], []).append(trace.name)
    assert drawn["intervals"] == [f"trial {label}" for label in labels]
    assert drawn["roc"] == [f"trial {label}" for label in labels] + ["chance"]
    assert [n for n in drawn["learning"] if not n.endswith("training")] == [f"trial {label}" for label in labels]
    assert [t.name for t in chart.data if t.showlegend is not False] == [f"trial {label}" for label in labels] + [
        "chance"
    ], "one legend entry per trial, for every panel"
    # The Grad-CAM grid: a row per validation image, a picture per trial that stored it.
    assert _images(at) == [1] * 16, "4 overlays of each of the 4 trials"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("2 validation image(s) that every trial was read on, then 4") for c in captions)
    assert sum("not stored for this trial" in c for c in captions) == 6 * 4 - 16, "6 images, 4 trials, 16 stored"


def test_test_and_external_rows_have_their_own_columns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.leaderboard_tests.test_external_rows import BEST, EXTERNAL, TEST, WORST, external_study

    database = external_study(tmp_path)
    at = open_page(monkeypatch, database, "compare", trials=f"{BEST},{WORST}")
    assert not at.exception and not at.error
    heads = [m.value for m in at.markdown if m.value.startswith("**") and "Trial" not in m.value]
    assert [unescaped(h) for h in heads] == ["**validation**", f"**{TEST}**", f"**{EXTERNAL}**"]
    tables = [d.value for d in at.dataframe if "differs" not in d.value.columns and "figure" not in d.value.columns]
    assert [list(t.columns) for t in tables] == [[str(BEST), str(WORST)], [str(WORST)], [str(WORST)]]
    assert any("never used to rank" in c.value for c in at.caption)


def test_the_trial_page_shows_what_it_gets_wrong(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    from leaderboard import mistakes as M

    at = open_page(monkeypatch, study_db, "trial", trial=str(WINNER))
    assert not at.exception and not at.error
    frame = M.mistakes_frame(study_db, "demo", WINNER)
    summary = M.mistake_summary(study_db, "demo", WINNER)
    assert summary is not None and len(frame) == 8
    assert _images(at) == [4] + [1] * 8, "four Grad-CAM overlays, then eight misclassified images"
    detail = D.trial_detail(D.read_only_engine(study_db), "demo", WINNER)
    assert detail is not None and detail.roc is not None
    titles = {f.layout.title.text for f in _figures(at)}
    assert f"ROC, COVID vs rest (AUC {detail.metrics['covid_auc']:.3f})" in titles, (
        "the curve's own AUC, not the macro one"
    )
    captions = [unescaped(c.value) for c in at.caption]
    assert any(c.startswith(f"8 of {summary.misclassified} misclassified validation images shown") for c in captions)
    shown = [c for c in captions if c.startswith(("missed COVID:", "false COVID:", "other confusion:"))]
    assert [c.split(":")[0] for c in shown] == list(frame["what"]), "missed COVID first, in the stored order"
    first = frame.iloc[0]
    assert shown[0].startswith(
        f"{first['what']}: {first['label']} → {first['predicted']}, COVID probability {first['covid_probability']:.2f}"
    )


def test_a_trial_without_stored_images_says_so(monkeypatch: pytest.MonkeyPatch, study_db: str) -> None:
    at = open_page(monkeypatch, study_db, "trial", study="second")
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any(c.startswith("No Grad-CAM overlays stored for this trial") for c in captions)
    assert any(c.startswith("No misclassified validation images stored for this trial") for c in captions)


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('studies') / 'optuna.db'}"
    make_synthetic_study(url, "full", 60, seed=1)
    make_synthetic_study(url, "lung_crop", 40, seed=2)
    return url


def test_two_studies_side_by_side(monkeypatch: pytest.MonkeyPatch, two_studies: str) -> None:
    at = open_page(monkeypatch, two_studies, "studies", study="full", studies="full,lung_crop")
    assert not at.exception and not at.error
    summary = at.dataframe[0].value
    assert list(summary.columns) == ["full", "lung_crop"] and list(summary.loc["trials"]) == [60, 40]
    drawn = {f.layout.title.text: f for f in _figures(at)}
    best = drawn["Best COVID sensitivity @ target so far"]
    assert {t.name for t in best.data} == {"full", "lung_crop"}
    assert [a.title.text for a in (best.layout.xaxis, best.layout.xaxis2)] == [
        "hours since the first trial",
        "trials recorded",
    ]
    spread = drawn["Completed trials: distribution"]
    assert [a.text for a in spread.layout.annotations] == ["COVID sensitivity @ target", "lung focus"]
    fronts = drawn["Pareto fronts: COVID sensitivity @ target vs lung focus"]
    assert {t.name for t in fronts.data} == {
        "full: trials",
        "full: Pareto front",
        "lung_crop: trials",
        "lung_crop: Pareto front",
    }
    next(s for s in at.selectbox if s.label == "Figure").set_value("covid_auc").run()
    assert "Best COVID AUC so far" in {f.layout.title.text for f in _figures(at)}


def test_one_engine_of_a_study_against_the_other(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from search.store import ResultStore

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_synthetic_study(url, "mixed", 30, seed=3)
    store = ResultStore(url)
    for row in store.trials("mixed")[:12]:  # the same trials again, as KerasTuner's
        row.engine = "keras-tuner"
        store.record(row)
    at = open_page(monkeypatch, url, "studies", study="mixed")
    assert not at.exception and not at.error
    assert at.query_params["studies"] == "mixed,mixed@keras-tuner"
    assert list(at.dataframe[0].value.columns) == ["mixed", "mixed (keras-tuner)"]
    assert list(at.dataframe[0].value.loc["trials"]) == [42, 12]


def test_a_database_of_one_study_says_how_to_get_a_second(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_synthetic_study(url, "only", 10, seed=3)
    at = open_page(monkeypatch, url, "studies", study="only")
    assert not at.exception
    assert at.info[0].value.startswith("This database holds one study. Run a second search")


def test_the_ranking_links_to_the_top_trial_and_shows_the_columns_that_matter(
    monkeypatch: pytest.MonkeyPatch, study_db: str
) -> None:
    at = open_page(monkeypatch, study_db)
    assert not at.exception
    links = [e.proto for e in at.main if type(e).__name__ == "PageLink"]
    assert [(link.label, link.query_string) for link in links][:1] == [
        (f"Open the top-ranked trial ({WINNER})", f"study=demo&trial={WINNER}")
    ]
    table = at.dataframe[0]
    assert list(table.proto.column_order)[:9] == [
        "rank", "trial_number", "review", "backbone", "scheme", "input_region", "op_sensitivity",
        "op_sensitivity_low", "op_sensitivity_high",
    ]  # fmt: skip
    assert "reviewer" not in table.proto.column_order


def test_an_older_results_schema_says_how_to_upgrade(monkeypatch: pytest.MonkeyPatch, writable_db: str) -> None:
    import sqlite3

    from search.store import SCHEMA_VERSION

    with sqlite3.connect(writable_db.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE cxr_schema SET value = '5' WHERE key = 'version'")  # as before the last upgrade
    at = open_page(monkeypatch, writable_db)
    assert not at.exception
    assert [unescaped(e.value) for e in at.error] == [
        f"The results schema must be version {SCHEMA_VERSION}, but {writable_db} has version 5; upgrade it in place with: "
        "python -m search.store upgrade --storage URL (or URL in $CXR_STORAGE)."
    ]
