"""leaderboard.data on synthetic studies: ranking, filters, pagination, Pareto front, read-only."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from leaderboard import data as D
from search.store import Ranking
from tests.leaderboard_tests.conftest import WINNER


@pytest.fixture(scope="module")
def engine(study_db: str) -> Engine:
    return D.read_only_engine(study_db)


def test_studies_are_listed(engine: Engine) -> None:
    assert set(D.studies(engine)) == {"demo", "second"}


def test_default_rule_ranks_by_sensitivity_at_the_target_then_focus_then_auc(engine: Engine) -> None:
    frame, total = D.ranking(engine, "demo", page_size=500)
    assert frame.iloc[0]["trial_number"] == WINNER
    assert set(frame["state"]) == {"COMPLETE"}
    assert total == len(frame)
    keys = list(zip(frame["op_sensitivity"], frame["lung_focus"], frame["covid_auc"], strict=True))
    assert keys == sorted(keys, reverse=True)
    low, high = frame["op_sensitivity_low"], frame["op_sensitivity_high"]
    assert ((low <= frame["op_sensitivity"]) & (frame["op_sensitivity"] <= high) & (high - low > 0.02)).all()
    assert frame["rank"].tolist() == list(range(1, total + 1))


def test_a_changed_rule_changes_the_order(engine: Engine) -> None:
    frame, _ = D.ranking(engine, "demo", rule=Ranking(("loss",)), page_size=500)
    assert frame["loss"].is_monotonic_increasing, "lower loss is better"
    frame, _ = D.ranking(engine, "demo", rule=Ranking(("accuracy", "covid_sensitivity")), page_size=500)
    assert frame["accuracy"].is_monotonic_decreasing


def test_unknown_values_rank_last(engine: Engine) -> None:
    frame, total = D.ranking(engine, "demo", filters=D.Filters(states=()), page_size=500)
    assert total == 200
    known = frame["covid_sensitivity"].notna().tolist()
    assert known == sorted(known, reverse=True), "every trial with a value comes before those without"


def test_filters_and_pagination_happen_in_sql(engine: Engine) -> None:
    everything, total = D.ranking(
        engine, "demo", filters=D.Filters(backbones=("ResNet50V2",), schemes=("three",)), page_size=1000
    )
    assert set(everything["backbone"]) == {"ResNet50V2"} and set(everything["scheme"]) == {"three"}
    pages = [
        D.ranking(
            engine, "demo", filters=D.Filters(backbones=("ResNet50V2",), schemes=("three",)), page=p, page_size=7
        )[0]
        for p in range(-(-total // 7))
    ]
    assert pd.concat(pages)["trial_number"].tolist() == everything["trial_number"].tolist()
    assert pages[1]["rank"].iloc[0] == 8


def test_filter_choices(engine: Engine) -> None:
    choices = D.filter_choices(engine, "demo")
    assert choices["states"] == ["COMPLETE", "FAIL", "PRUNED"]
    assert choices["engines"] == ["optuna"]
    assert "DenseNet121" in choices["backbones"]
    assert choices["regions"] == ["full", "lung_crop", "lung_mask"]


def test_the_input_region_is_a_column_and_a_filter(engine: Engine) -> None:
    everything, total = D.ranking(engine, "demo", filters=D.Filters(states=()), page_size=500)
    assert set(everything["input_region"]) == {"full", "lung_crop", "lung_mask"}
    crops, n_crops = D.ranking(engine, "demo", filters=D.Filters(regions=("lung_crop",), states=()), page_size=500)
    assert set(crops["input_region"]) == {"lung_crop"} and 0 < n_crops < total
    assert n_crops == int((everything["input_region"] == "lung_crop").sum())


def test_the_study_decides_its_default_rule(engine: Engine) -> None:
    assert D.study_ranking(engine, "demo").keys[0] == "op_sensitivity"  # no stored space: the default


def test_rule_text() -> None:
    assert D.rule_text(Ranking(("covid_sensitivity", "loss"))) == (
        "Ranked by COVID sensitivity ↓, then validation loss ↑ (unknown values last; trials below argmax COVID "
        "specificity 0.50 rank after the others; validation split only)."
    )
    assert (
        D.rule_text(Ranking(("loss",), 0.0))
        == "Ranked by validation loss ↑ (unknown values last; validation split only)."
    )


def _top(**changes: object) -> pd.DataFrame:
    row = {"trial_number": 7, "backbone": "DenseNet121", "scheme": "three", "covid_sensitivity": 0.95,
           "op_sensitivity": 0.925, "op_sensitivity_low": 0.87, "op_sensitivity_high": 0.96, "op_specificity": 0.95,
           "covid_threshold": 0.31, "covid_auc": 0.99, "lung_focus": 0.41, "roc_auc": 0.98, "below_floor": False,
           "lung_focus_ratio": 1.3}  # fmt: skip
    return pd.DataFrame([{**row, **changes}])


@pytest.mark.parametrize(
    ("changes", "says", "does_not_say"),
    [
        (
            {},
            "COVID sensitivity 0.925 [95% CI 0.87, 0.96] at specificity 0.950 (threshold 0.310), COVID AUC 0.990, "
            "lung focus 0.410",
            " — ",
        ),
        ({"op_sensitivity": None}, "COVID sensitivity 0.950 (argmax), COVID AUC 0.990", "threshold"),
        ({"below_floor": True}, "— below the specificity floor", "uniform map"),
        (
            {"lung_focus_ratio": 0.86},
            "no more in the lungs than a uniform map's (lung focus / lung area 0.86)",
            "floor",
        ),
        ({"lung_focus_ratio": 1.0}, "lung focus 0.410", "uniform map"),  # a flat map's ratio: not below it
        ({"lung_focus": None, "lung_focus_ratio": None}, "lung focus —", "uniform map"),
        (
            {"hidden_lungs_auc": 0.83},
            "— with the lungs hidden it still tells COVID (AUC 0.83, 0.5 is chance): part of its decision can "
            "come from outside the lungs (a search with `--regions lung_mask` rules that out)",
            "uniform map",
        ),
        ({"hidden_lungs_auc": 0.55}, "lung focus 0.410", "lungs hidden"),  # within chance
        ({"hidden_lungs_auc": 0.3}, "with the lungs hidden it still tells COVID (AUC 0.30", "uniform map"),  # inverted
        ({"hidden_lungs_auc": None}, "lung focus 0.410", "lungs hidden"),  # unmeasured: an older row
    ],
)
def test_the_top_line_names_what_could_make_the_winner_a_trap(
    changes: dict[str, object], says: str, does_not_say: str
) -> None:
    line = D.top_line(_top(**changes))
    assert line.startswith("Top-ranked: trial 7 (DenseNet121, three): ")
    assert says in line and does_not_say not in line


def test_the_top_line_of_an_empty_page() -> None:
    assert D.top_line(_top().iloc[:0]) == "No trial matches the filters."


def _with_degenerate_trial(tmp_path: Path) -> str:
    """A synthetic study plus one trial that calls every X-ray COVID (sensitivity 1, specificity 0)."""
    from leaderboard.synthetic import make_synthetic_study
    from search.space import TrialConfig
    from search.store import ResultStore, config_row

    url = f"sqlite:///{tmp_path / 'degenerate.db'}"
    make_synthetic_study(url, "d", 20, seed=6)
    row = config_row("d", 100, TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three"), "COMPLETE")
    row.covid_sensitivity, row.covid_specificity, row.accuracy, row.lung_focus = 1.0, 0.0, 0.333, 0.9
    row.op_sensitivity, row.op_specificity = 0.06, 0.95  # at a fixed specificity, hardly any COVID case is found
    ResultStore(url).record(row)
    return url


ARGMAX = Ranking(("covid_sensitivity", "lung_focus", "roc_auc"))


def test_a_model_that_calls_everything_covid_ranks_after_real_models(tmp_path: Path) -> None:
    engine = D.read_only_engine(_with_degenerate_trial(tmp_path))
    frame, _ = D.ranking(engine, "d", rule=ARGMAX, page_size=100)
    assert frame.iloc[-1]["trial_number"] == 100 and frame.iloc[-1]["below_floor"]
    assert not frame.iloc[:-1]["below_floor"].any()
    keys = list(zip(frame["covid_sensitivity"][:-1], frame["lung_focus"][:-1], strict=True))
    assert keys == sorted(keys, reverse=True), "the rule still orders the trials above the floor"
    unguarded, _ = D.ranking(engine, "d", rule=Ranking(ARGMAX.keys, 0.0), page_size=100)
    assert unguarded.iloc[0]["trial_number"] == 100 and not unguarded["below_floor"].any()
    strict, _ = D.ranking(engine, "d", rule=Ranking(ARGMAX.keys, 1.0), page_size=100)
    assert strict["below_floor"].all(), "no synthetic trial reaches specificity 1.0"
    assert strict["trial_number"].tolist() == unguarded["trial_number"].tolist(), "all below: the rule alone"


def test_at_a_fixed_specificity_a_degenerate_model_sinks_without_the_floor(tmp_path: Path) -> None:
    engine = D.read_only_engine(_with_degenerate_trial(tmp_path))
    frame, _ = D.ranking(engine, "d", rule=Ranking(min_specificity=0.0), page_size=100)
    assert frame.iloc[-1]["trial_number"] == 100, "its sensitivity at specificity 0.95 is 0.06"


def test_pareto_front_by_hand() -> None:
    frame = pd.DataFrame({"covid_sensitivity": [0.9, 0.8, 0.95, 0.7, None], "lung_focus": [0.5, 0.9, 0.4, 0.3, 0.99]})
    assert D.pareto_front(frame).tolist() == [True, True, True, False, False]
    ties = pd.DataFrame({"covid_sensitivity": [0.9, 0.9, 0.9, 0.8, 0.8], "lung_focus": [0.5, 0.5, 0.4, 0.6, 0.5]})
    assert D.pareto_front(ties).tolist() == [True, True, False, True, False]
    assert D.pareto_front(ties.iloc[:0]).tolist() == []


@pytest.mark.parametrize("seed", range(20))
def test_the_pareto_front_is_the_rows_nothing_beats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(60, 2)).astype(float) / 5  # few distinct values: many ties
    values[rng.random(60) < 0.1, rng.integers(0, 2)] = np.nan
    frame = pd.DataFrame(values, columns=["covid_sensitivity", "lung_focus"])
    expected = []
    for a, b in values:
        beaten = (values[:, 0] >= a) & (values[:, 1] >= b) & ((values[:, 0] > a) | (values[:, 1] > b))
        expected.append(not (np.isnan([a, b]).any() or beaten.any()))
    assert D.pareto_front(frame).tolist() == expected


def test_trial_detail(engine: Engine) -> None:
    detail = D.trial_detail(engine, "demo", WINNER)
    assert detail is not None and detail.state == "COMPLETE"
    assert detail.metrics["op_sensitivity"] == 119 / 120
    assert detail.confusion is not None and len(detail.confusion) == 3
    assert detail.roc is not None
    fpr, tpr = detail.roc
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0 and fpr == sorted(fpr) and tpr == sorted(tpr)
    assert abs(float(np.trapezoid(tpr, fpr)) - detail.metrics["covid_auc"]) < 0.01, "the curve has the trial's AUC"
    assert list(detail.epochs["epoch"]) == list(range(len(detail.epochs)))
    assert D.trial_detail(engine, "demo", 10_000) is None


def test_the_engine_cannot_write(engine: Engine) -> None:
    with pytest.raises(OperationalError, match="readonly"), engine.begin() as conn:
        conn.execute(text("DELETE FROM cxr_trials"))


def test_a_path_with_a_hash_stays_read_only_and_creates_no_file(tmp_path: Path) -> None:
    from leaderboard.synthetic import make_synthetic_study

    folder = tmp_path / "runs#1"
    folder.mkdir()
    make_synthetic_study(f"sqlite:///{folder / 'optuna.db'}", "h", 3, seed=1)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    engine = D.read_only_engine(f"sqlite:///{folder / 'optuna.db'}")
    assert D.studies(engine) == ["h"]
    with pytest.raises(OperationalError, match="readonly"), engine.begin() as conn:
        conn.execute(text("DELETE FROM cxr_trials"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "no stray database file"


def test_postgres_sessions_of_the_leaderboard_cannot_write(postgres: str) -> None:
    """Every transaction of the page's engine and of the Optuna charts' storage is read-only."""
    import optuna
    from sqlalchemy.exc import InternalError

    from leaderboard.synthetic import make_synthetic_study

    make_synthetic_study(postgres, "ro", 3, seed=1)
    engine = D.read_only_engine(postgres)
    assert "ro" in D.studies(engine)
    with pytest.raises(InternalError, match="read-only transaction"), engine.begin() as conn:
        conn.execute(text("DELETE FROM cxr_trials"))
    with engine.connect() as conn:  # a second connection of the pool, after a rollback: still read-only
        assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
    ro_url, engine_kwargs = D.read_only_url(postgres)
    storage = optuna.storages.RDBStorage(ro_url, engine_kwargs=engine_kwargs, skip_table_creation=True)
    study_id = storage.get_study_id_from_name("ro")
    with pytest.raises(optuna.exceptions.StorageInternalError) as caught:
        storage.set_study_user_attr(study_id, "x", 1)
    assert "read-only transaction" in str(caught.value.__cause__)
    with Session(create_engine(postgres)) as session:
        assert session.scalar(text("SELECT count(*) FROM cxr_trials WHERE study_name = 'ro'")) == 3


def test_a_missing_database_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"The results database must exist, but .*nope.db does not\."):
        D.read_only_engine(f"sqlite:///{tmp_path / 'nope.db'}")


def test_both_engines_rank_side_by_side_and_filter_apart(tmp_path: Path) -> None:
    from leaderboard.synthetic import make_synthetic_study
    from search.space import TrialConfig
    from search.store import ResultStore, config_row

    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    make_synthetic_study(url, "mixed", 20, seed=3)
    config = TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three")
    row = config_row("mixed", 0, config, "COMPLETE", engine="keras-tuner")  # the same number as an Optuna trial
    row.covid_sensitivity, row.lung_focus, row.roc_auc, row.accuracy = 1.0, 0.99, 0.99, 0.97
    row.covid_specificity, row.op_sensitivity, row.op_specificity = 0.95, 1.0, 0.95
    ResultStore(url).record(row)
    engine = D.read_only_engine(url)
    frame, _ = D.ranking(engine, "mixed", page_size=100)
    assert (frame.iloc[0]["engine"], frame.iloc[0]["trial_number"]) == ("keras-tuner", 0)
    assert set(frame["engine"]) == {"optuna", "keras-tuner"}
    assert D.filter_choices(engine, "mixed")["engines"] == ["keras-tuner", "optuna"]
    only, total = D.ranking(engine, "mixed", filters=D.Filters(engines=("optuna",)), page_size=100)
    assert set(only["engine"]) == {"optuna"} and total == len(frame) - 1
    kt_detail = D.trial_detail(engine, "mixed", 0, "keras-tuner")
    optuna_detail = D.trial_detail(engine, "mixed", 0, "optuna")
    assert kt_detail is not None and optuna_detail is not None
    assert kt_detail.metrics["covid_sensitivity"] == 1.0 != optuna_detail.metrics.get("covid_sensitivity")


def test_a_cross_validated_trial_shows_its_figures_per_fold(tmp_path: Path) -> None:
    import json as _json

    from leaderboard.synthetic import make_synthetic_study
    from search.space import TrialConfig
    from search.store import ResultStore, config_row

    url = f"sqlite:///{tmp_path / 'folds.db'}"
    make_synthetic_study(url, "f", 5, seed=2)
    row = config_row("f", 50, TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three", folds=3), "COMPLETE")
    row.folds = 3
    row.fold_spread_json = _json.dumps({"accuracy": {"mean": 0.9, "std": 0.02, "folds": [0.88, 0.9, 0.92]}})
    ResultStore(url).record(row)
    detail = D.trial_detail(D.read_only_engine(url), "f", 50)
    assert detail is not None
    assert detail.folds.loc["accuracy", "mean"] == 0.9 and detail.folds.loc["accuracy", "fold 3"] == 0.92
    plain = D.trial_detail(D.read_only_engine(url), "f", 0)
    assert plain is not None and plain.folds.empty


@pytest.mark.parametrize(
    "text",
    [
        "![pixel](http://attacker.example/track.png)",
        "[click](javascript:alert(1))",
        "<img src=http://attacker.example/x.png>",
        "**bold** _it_ `code` $x$ :smile:",
        "line\n\n# heading",
    ],
)
def test_database_strings_are_shown_literally(text: str) -> None:
    escaped = D.escape_markdown(text)
    assert not re.search(r"(?<!\\)[\[\]()<>!`*_$:]", escaped), escaped  # every special character escaped
    assert "\n" not in escaped
    assert escaped.replace("\\", "") == " ".join(text.split())


def _hostile_study(tmp_path: Path) -> str:
    from leaderboard.synthetic import make_synthetic_study
    from search.space import TrialConfig
    from search.store import ResultStore, config_row

    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    make_synthetic_study(url, "hostile", 5, seed=2)
    row = config_row("hostile", 99, TrialConfig("MobileNetV2", 1.0, 64, 0.1, 1e-3, 0.0, "three"), "COMPLETE")
    row.backbone = "![x](http://attacker.example/p.png)"
    row.error = "[click](http://attacker.example)"
    row.op_sensitivity, row.op_specificity, row.covid_sensitivity, row.covid_specificity = 1.0, 1.0, 1.0, 1.0
    row.config_json, row.per_class_json, row.covid_roc_json = "{not json", "[1, 2", '"a string"'
    row.confusion_json, row.class_names_json, row.fold_spread_json = '{"a": 1}', "3", "[1]"
    ResultStore(url).record(row)
    return url


def test_corrupt_json_columns_are_reported_not_raised(tmp_path: Path) -> None:
    detail = D.trial_detail(D.read_only_engine(_hostile_study(tmp_path)), "hostile", 99)
    assert detail is not None
    assert detail.config == {} and detail.class_names == [] and detail.roc is None and detail.per_class.empty
    assert detail.folds.empty
    joined = " ".join(detail.problems)
    for column in ("config_json", "per_class_json", "class_names_json"):
        assert f"The column {column} of this trial must hold" in joined
    assert "The ROC curve of this trial must be two lists of rates" in joined


def test_the_top_line_escapes_what_the_database_says(tmp_path: Path) -> None:
    frame, _ = D.ranking(D.read_only_engine(_hostile_study(tmp_path)), "hostile")
    line = D.top_line(frame)
    assert line.startswith("Top-ranked: trial 99 (\\!\\[x\\]\\(http\\://attacker.example/p.png\\)")


def test_the_csv_holds_every_matching_trial_in_rank_order(engine: Engine) -> None:
    import io

    rule, filters = Ranking(("loss",)), D.Filters(backbones=("DenseNet121",))
    table = pd.read_csv(io.StringIO(D.ranking_csv(engine, "demo", rule=rule, filters=filters)))
    frame, total = D.ranking(engine, "demo", rule=rule, filters=filters, page_size=10_000)
    assert len(table) == total > D.ranking(engine, "demo", rule=rule, filters=filters)[0].shape[0] // 2
    assert table["trial_number"].tolist() == frame["trial_number"].tolist()
    assert table["rank"].tolist() == list(range(1, total + 1)) and set(table["backbone"]) == {"DenseNet121"}
    assert table.columns[:3].tolist() == ["rank", "trial_number", "engine"]


def test_a_configuration_reads_as_a_table() -> None:
    table = D.config_table({"backbone": "DenseNet121", "learning_rate": 0.000123456, "target_sensitivity": None})
    assert table.to_dict("records") == [
        {"parameter": "backbone", "value": "DenseNet121"},
        {"parameter": "learning_rate", "value": "0.0001235"},
        {"parameter": "target_sensitivity", "value": "—"},
    ]


def test_the_trials_of_a_study_in_one_narrow_query(engine: Engine) -> None:
    assert D.trial_keys(engine, "demo") == [("optuna", n) for n in range(200)]
    assert D.trial_keys(engine, "nowhere") == []
