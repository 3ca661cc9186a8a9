"""leaderboard.comparison: trials and studies side by side, as pure frames."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine

from leaderboard import charts
from leaderboard import comparison as C
from leaderboard import data as D
from leaderboard.synthetic import OVERLAY_IMAGES
from tests.conftest import REPO

KNOWN = {("optuna", n) for n in range(10)} | {("keras-tuner", 0)}


@pytest.fixture(scope="module")
def engine(study_db: str) -> Engine:
    return D.read_only_engine(study_db)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3,7,9", [("optuna", 3), ("optuna", 7), ("optuna", 9)]),
        (" 1 , 2 ", [("optuna", 1), ("optuna", 2)]),
        ("keras-tuner:0,0,1,2", [("keras-tuner", 0), ("optuna", 0), ("optuna", 1), ("optuna", 2)]),
    ],
)
def test_the_address_names_2_to_4_trials(text: str, expected: list[tuple[str, int]]) -> None:
    assert C.parse_trials(text, KNOWN, "demo") == expected
    assert ",".join(C.trial_link(t) for t in expected) == ",".join(p.strip() for p in text.split(","))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "`trials` must list 2 to 4 trials separated by commas (e.g. trials=3,7,9), but got 0: ''."),
        ("1", "`trials` must list 2 to 4 trials separated by commas (e.g. trials=3,7,9), but got 1: '1'."),
        ("1,2,3,4,5", "`trials` must list 2 to 4 trials separated by commas (e.g. trials=3,7,9), but got 5: '1,2,3,4,5'."),
        ("1,x", "`trials` must be trial numbers (or ENGINE:NUMBER) separated by commas (e.g. trials=3,7,9), but got 'x'."),
        ("1,-2", "`trials` must be trial numbers (or ENGINE:NUMBER) separated by commas (e.g. trials=3,7,9), but got '-2'."),
        ("2,2", "`trials` must name different trials, but got trial 2 twice."),
        ("1,99", "`trials` must name trials of study 'demo' with stored results, but trial 99 has none."),
        ("1,keras-tuner:1", "`trials` must name trials of study 'demo' with stored results, but trial keras-tuner:1 has none."),
    ],
)  # fmt: skip
def test_a_bad_address_is_one_sentence(text: str | None, message: str) -> None:
    with pytest.raises(ValueError) as info:
        C.parse_trials(text, KNOWN, "demo")
    assert str(info.value) == message


def test_the_configurations_differences_come_first_and_are_marked() -> None:
    table = C.config_diff(
        {
            "3": {"backbone": "MobileNetV2", "dropout": 0.1, "scheme": "three", "image_size": 128},
            "7": {"backbone": "DenseNet121", "dropout": 0.1, "scheme": "three", "image_size": 128},
            "9": {"backbone": "MobileNetV2", "dropout": 0.25, "scheme": "three", "image_size": 128, "folds": 5},
        }
    )
    assert list(table.columns) == ["parameter", "differs", "3", "7", "9"]
    assert table[["parameter", "differs"]].values.tolist() == [
        ["backbone", True],
        ["dropout", True],
        ["folds", True],
        ["scheme", False],
        ["image_size", False],
    ]
    assert table.loc[table["parameter"] == "folds", ["3", "9"]].values.tolist() == [["—", "5"]]


def test_figures_carry_their_intervals_and_splits_their_own_columns(engine: Engine) -> None:
    details = {str(n): D.trial_detail(engine, "demo", n) for n in (17, 3)}
    assert all(d is not None for d in details.values())
    found = {k: d for k, d in details.items() if d is not None}
    table = C.metric_table(found)
    row = table[table["figure"] == "COVID sensitivity @ target [95% CI]"].iloc[0]
    m = found["17"].metrics
    assert row["17"] == f"{m['op_sensitivity']:.3f} [{m['op_sensitivity_low']:.3f}, {m['op_sensitivity_high']:.3f}]"
    intervals = C.interval_frame(found)
    assert set(intervals["trial"]) == {"17", "3"} and (intervals["low"] <= intervals["value"]).all()
    tables = C.split_tables(found)
    assert list(tables) == ["validation"] and list(tables["validation"].columns) == ["17", "3"]


def test_overlays_are_matched_by_file_name_shared_images_first() -> None:
    def stored(scheme: str) -> list[dict[str, str]]:
        return [
            {"kind": "gradcam", "artifact_id": f"{scheme}-{image}", "filename": f"gradcam-{image}.png"}
            for image in OVERLAY_IMAGES[scheme]
        ] + [{"kind": "model", "artifact_id": "m", "filename": "model.keras"}]

    grid = C.overlay_grid({"3": stored("binary"), "7": stored("three"), "9": stored("three")})
    assert [row.image for row in grid] == ["COVID-101", "Normal-212", "Normal-87", "COVID-77", "Viral Pneumonia-33",
                                           "COVID-140"]  # fmt: skip
    assert [row.shared for row in grid] == [True, True, False, False, False, False]
    assert grid[0].artifacts == {"3": "binary-COVID-101", "7": "three-COVID-101", "9": "three-COVID-101"}
    assert grid[2].artifacts == {"3": "binary-Normal-87", "7": None, "9": None}
    assert C.overlay_grid({"3": [], "7": []}) == []


def test_best_so_far_only_improves_and_summaries_count_states(engine: Engine) -> None:
    frame = D.all_trials(engine, "demo")
    curve = C.best_so_far(frame, "op_sensitivity")
    assert curve["best"].is_monotonic_increasing and curve["hours"].is_monotonic_increasing
    assert curve["best"].iloc[-1] == frame.loc[frame["state"] == "COMPLETE", "op_sensitivity"].max()
    lowest = C.best_so_far(frame, "loss")
    assert lowest["best"].is_monotonic_decreasing
    summary = C.study_summary({"demo": frame, "second": D.all_trials(engine, "second")}, "op_sensitivity")
    assert list(summary.loc["trials"]) == [200, 30]
    assert summary.loc["completed"].sum() + summary.loc["pruned"].sum() + summary.loc["failed"].sum() == 230
    assert summary["second"].isna()["median lung focus"], "no lung focus measured"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("demo,second", ["demo", "second"]), ("demo@optuna,demo@keras-tuner", ["demo (optuna)", "demo (keras-tuner)"])],
)
def test_studies_are_named_whole_or_by_engine(text: str, expected: list[str]) -> None:
    groups = C.parse_groups(text, ["demo", "second"], {"demo": ["keras-tuner", "optuna"], "second": ["optuna"]})
    assert [g.label for g in groups] == expected
    assert ",".join(g.link for g in groups) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("demo", "`studies` must name two studies separated by a comma (e.g. studies=A,B), but got 'demo'."),
        ("demo,nope", "`studies` must name studies of this database (NAME, or NAME@ENGINE for one engine's trials), "
                      "but got 'nope'."),
        ("demo,second@keras-tuner", "`studies` must name studies of this database (NAME, or NAME@ENGINE for one "
                                    "engine's trials), but got 'second@keras-tuner'."),
    ],
)  # fmt: skip
def test_a_bad_studies_address_is_one_sentence(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        C.parse_groups(text, ["demo", "second"], {"demo": ["optuna"], "second": ["optuna"]})
    assert str(info.value) == message


def test_the_comparison_charts(engine: Engine) -> None:
    details = {str(n): D.trial_detail(engine, "demo", n) for n in (17, 3, 5)}
    found = {k: d for k, d in details.items() if d is not None and d.roc is not None}
    rocs = {k: (*d.roc, d.metrics["roc_auc"]) for k, d in found.items() if d.roc}
    curves = {k: (d.epochs, d.pruned_at_epoch) for k, d in found.items()}
    chart = charts.compare_figure(C.interval_frame(found), rocs, curves)
    roc = [t.name for t in chart.data if t.xaxis == "x2"]
    assert roc == [f"trial {k}" for k in found] + ["chance"]
    learning = {t.name for t in chart.data if t.xaxis == "x3"}
    assert learning >= {f"trial {k}" for k in found} | {f"trial {k}: training" for k in found}
    frames = {"demo": D.all_trials(engine, "demo"), "second": D.all_trials(engine, "second")}
    best = charts.best_so_far_figure(
        {k: C.best_so_far(f, "covid_sensitivity") for k, f in frames.items()}, "covid_sensitivity"
    )
    assert len(best.data) == 4 and best.layout.title.text == "Best COVID sensitivity so far"
    spread = charts.distribution_figure(frames, ["covid_sensitivity", "lung_focus"])
    assert [t.type for t in spread.data] == ["histogram"] * 4
    fronts = charts.fronts_figure({"demo": frames["demo"]}, "op_sensitivity")
    front = next(t for t in fronts.data if t.name == "demo: Pareto front")
    assert list(front.x) == sorted(front.x) and len(front.x) >= 1


def test_the_pure_modules_load_no_tensorflow() -> None:
    code = "import sys, leaderboard.comparison, leaderboard.synthetic; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
