"""``python -m search.launch`` end to end: results in SQL, resume, reopen, bad arguments, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import optuna
import pytest

from cxrdata.synthetic import SyntheticSpec, make_synthetic_dataset
from search.launch import main
from search.store import ResultStore
from tests.conftest import BASE, child_env, launch, spawn, wait_until


def test_every_trial_lands_in_optuna_and_the_results_store(searched: Path) -> None:
    storage = f"sqlite:///{searched / 'optuna.db'}"
    trials = optuna.load_study(study_name="cxr-search", storage=storage).get_trials()
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials)
    rows = ResultStore(storage).trials("cxr-search")  # a fresh connection: results survive a reopen
    assert sorted(r.trial_number for r in rows) == [0, 1, 2]
    complete = [r for r in rows if r.state == "COMPLETE"]
    assert complete, "at least one trial completes"
    for row in complete:
        assert row.backbone == "MobileNet_0.25" and row.image_size == 32
        assert row.accuracy is not None and row.covid_sensitivity is not None
        assert len(row.epochs) == row.epochs_run == 2
        assert row.confusion_json and row.per_class_json
        # The tiny dataset has masks, so focus is measured; a 1x1 feature map may be blank.
        assert row.lung_mask_source == "dataset" and row.lung_focus_n
        assert (row.lung_focus is not None and 0 <= row.lung_focus <= 1) or row.lung_focus_blank == row.lung_focus_n
        assert len([a for a in row.artifacts if a.kind == "gradcam"]) == min(4, row.lung_focus_n)
        models = [a for a in row.artifacts if a.kind == "model"]
        assert len(models) == 1
        assert (searched / "artifacts" / models[0].artifact_id).is_file()


def test_a_resumed_study_continues_its_trial_count(searched: Path) -> None:
    workdir = searched.parent / "resumed"
    shutil.copytree(searched, workdir)
    done = launch("--trials", "2", *BASE, cwd=workdir)  # no --data: the study remembers it
    assert done.returncode == 0, done.stderr[-3000:]
    rows = ResultStore(f"sqlite:///{workdir / 'optuna.db'}").trials("cxr-search")
    assert sorted(r.trial_number for r in rows) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, d: ["--data", str(t / "missing")], "The dataset root must be an existing folder, but"),
        (lambda t, d: [], "`--data` must name the dataset for a new study, but none was given for 'cxr-search'."),
        (
            lambda t, d: ["--data", str(d), "--backbones", "MobileNetV9"],
            "`backbone` must be a registered backbone, but got 'MobileNetV9'. Did you mean",
        ),
        (
            lambda t, d: ["--data", str(d), "--weights", str(t), "--backbones", "VGG16"],
            "ImageNet weights for VGG16 need the file 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5' in",
        ),
        (lambda t, d: ["--data", str(d), "--weights", "imagenett"], "`--weights` must be 'imagenet', 'none' or an existing"),
        (lambda t, d: ["--data", str(d), "--schemes", "four"], "The 'four' scheme needs images in the class folder(s) 'Lung_Opacity'"),
        (lambda t, d: ["--data", str(d), "--pruner", "asha"], "`pruner` must be one of percentile, median, hyperband, none, but got 'asha'."),
        (lambda t, d: ["--data", str(d), "--image-size", "8"], "`16 <= image_size <= 2048` must hold, but got image_size=8."),
        (lambda t, d: ["--data", str(d), "--storage", "not a url"], "`--storage` must be a database URL such as"),
        (
            lambda t, d: ["--data", str(d), "--storage", f"sqlite:///{t}/no/such/dir/optuna.db"],
            "The database must be reachable, but sqlite:///",
        ),
        (lambda t, d: ["--data", str(d), "--config", str(t / "x.toml")], "The config file must be an existing TOML file"),
    ],
    ids=[
        "missing-data", "no-data", "unknown-backbone", "missing-weights", "bad-weights", "missing-class",
        "bad-pruner", "tiny-image", "bad-url", "unreachable-db", "missing-config",
    ],
)  # fmt: skip
def test_bad_arguments_get_one_sentence(
    tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str], make_args: object, message: str
) -> None:
    args = ["--trials", "1", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--weights", "none"]
    args += make_args(tmp_path, tiny)  # type: ignore[operator]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {message}"), err


@pytest.fixture(scope="module")
def covid_vs_normal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The commonest dataset there is: COVID and Normal folders only."""
    root = tmp_path_factory.mktemp("two-class")
    return make_synthetic_dataset(root, SyntheticSpec(classes=("COVID", "Normal"), per_class=8, size=32, seed=4))


def test_default_schemes_follow_the_classes_the_data_has(
    covid_vs_normal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.launch import parse_args, prepare

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    plan = prepare(parse_args(["--trials", "1", "--storage", storage, "--data", str(covid_vs_normal), *BASE]))
    assert plan.space.schemes == ("binary",)
    assert "The default scheme(s) three need classes this dataset does not have (COVID, Normal): searching binary" in (
        capsys.readouterr().err
    )


def test_chosen_schemes_the_data_cannot_serve_are_refused_naming_what_would(
    covid_vs_normal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["--trials", "1", "--storage", storage, "--data", str(covid_vs_normal), *BASE, "--schemes", "three"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: The 'three' scheme needs images in the class folder(s) 'Viral Pneumonia'")
    assert err.endswith("Choose --schemes binary for these classes.")


@pytest.mark.parametrize(("flag", "value"), [("--trials", "0"), ("--workers", "-1"), ("--trials", "many")])
def test_bad_counts_are_refused_by_the_parser(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--trials", "1", flag, value])
    assert info.value.code == 2
    assert f"argument {flag}: `{flag}" in capsys.readouterr().err


def test_a_resumed_study_refuses_other_data_or_another_space(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    shutil.copy(searched / "optuna.db", tmp_path / "optuna.db")
    other = make_synthetic_dataset(tmp_path / "other", SyntheticSpec(per_class=16, size=40, seed=99))
    assert main(["--trials", "1", "--storage", storage, "--data", str(other), *BASE]) == 1
    assert (
        "A resumed study must see the same dataset, but study 'cxr-search' was created on data"
        in capsys.readouterr().err
    )
    assert main(["--trials", "1", "--storage", storage, *BASE[:-1], "MobileNetV2"]) == 1
    assert "A resumed study must keep its search space, but" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_records_the_running_trial_as_failed_and_keeps_the_rest(tiny: Path, tmp_path: Path) -> None:
    # Trials on images: cached activations make tiny trials too quick to interrupt reliably.
    env = child_env(CXR_FEATURE_CACHE_GB="0")
    args = [
        "--trials",
        "3",
        "--data",
        str(tiny),
        "--weights",
        "none",
        "--image-size",
        "32",
        "--backbones",
        "MobileNet_0.25",
    ]
    proc = spawn(
        "search.launch", *args, "--max-epochs", "40", "--pruner", "none", cwd=tmp_path, env=env,
        start_new_session=True,  # its own process group, as a terminal would have
    )  # fmt: skip
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    def training() -> bool:
        trials = optuna.load_study(study_name="cxr-search", storage=storage).get_trials()
        return any(t.state == optuna.trial.TrialState.RUNNING and t.intermediate_values for t in trials)

    # A trial past its first epoch is mid-training; until launch has made the study, reading fails.
    wait_until(training, 240, 0.5, what="a trial finishing its first epoch", ignoring=(Exception,))
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-2000:]
    assert "Stopping: the running trials are recorded as failed" in err
    trials = optuna.load_study(study_name="cxr-search", storage=storage).get_trials()
    assert trials[-1].state == optuna.trial.TrialState.FAIL
    rows = ResultStore(storage).trials("cxr-search")
    assert rows[-1].state == "FAIL" and rows[-1].error == "interrupted (Ctrl-C)"


@pytest.mark.slow
def test_a_dataset_without_masks_gets_them_from_the_packaged_segmenter(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "nomasks", SyntheticSpec(per_class=12, size=48, masks=False, seed=8))
    done = launch("--trials", "1", "--data", str(data), *BASE[:3], "64", *BASE[4:], cwd=tmp_path)  # no flag: auto
    assert done.returncode == 0, done.stderr[-3000:]
    assert "lung masks: 0 from the dataset, 36 from the packaged segmenter (held-out Dice 0.948)" in done.stderr
    (row,) = ResultStore(f"sqlite:///{tmp_path / 'optuna.db'}").trials("cxr-search")
    assert row.lung_mask_source == "segmenter" and row.lung_focus_n
    assert row.hidden_lungs_auc is not None, "the lungs are hidden with the segmenter's masks too"
    header, *_ = (line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert "AUC lungs hidden" in header and f"{row.hidden_lungs_auc:.3f}" in done.stdout
    assert json.loads(row.config_json)["focus_weight"] == 2.0, "trained to look at the lungs by default"
    assert list(tmp_path.glob(".cache/lungs-*.npy")), "segmented masks are cached beside the images"


@pytest.mark.slow
def test_without_masks_or_segmenter_the_launch_says_so(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "nomasks", SyntheticSpec(per_class=12, size=48, masks=False, seed=8))
    done = launch("--trials", "1", "--data", str(data), "--lung-model", "none", *BASE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "lung masks: 0 from the dataset, none for the other 36 (--lung-model none): lung focus is not measured." in (
        done.stderr
    )
    (row,) = ResultStore(f"sqlite:///{tmp_path / 'optuna.db'}").trials("cxr-search")
    assert row.lung_focus is None and row.lung_mask_source is None
    assert row.hidden_lungs_auc is None, "no mask, nothing to hide"
    assert (
        "focus_weight=2 needs lung masks, but the dataset has none and --lung-model is none: trials train without "
        "the focus penalty (focus_weight = 0)." in done.stderr
    )
    assert json.loads(row.config_json)["focus_weight"] == 0.0


def test_a_worker_refuses_data_with_another_fingerprint(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.worker import main as worker_main

    previous = signal.getsignal(signal.SIGINT)  # the worker CLI owns Ctrl-C; give it back to pytest after
    other = make_synthetic_dataset(tmp_path / "other", SyntheticSpec(per_class=16, size=40, seed=42))
    storage = f"sqlite:///{searched / 'optuna.db'}"
    assert worker_main(["--storage", storage, "--study", "cxr-search", "--trials", "1", "--data", str(other)]) == 1
    err = capsys.readouterr().err
    assert f"error: A worker must see the study's dataset, but {other} has fingerprint" in err
    assert worker_main(["--storage", storage, "--study", "cxr-serch", "--trials", "1"]) == 1
    assert "there is no study 'cxr-serch'. Did you mean 'cxr-search'?" in capsys.readouterr().err
    signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_timeout_starts_no_trial_after_the_deadline(tiny: Path, tmp_path: Path, engine: str) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    started = time.monotonic()
    assert main(["--trials", "500", "--timeout", "25", "--storage", storage, "--data", str(tiny),
                 "--engine", engine, *BASE]) == 0  # fmt: skip
    elapsed = time.monotonic() - started
    rows = ResultStore(storage).trials("cxr-search")
    assert 1 <= len(rows) < 500
    assert elapsed < 25 + 60, "only the trial running at the deadline may finish after it"


def _worker_pids(parent: int) -> list[int]:
    """The launch's worker processes (spawned children), from /proc."""
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                pids.append(int(child))
    return pids


@pytest.mark.slow
def test_a_worker_that_dies_is_reported_and_the_others_finish(tiny: Path, tmp_path: Path) -> None:
    proc = spawn("search.launch", "--trials", "4", "--workers", "2", "--data", str(tiny), *BASE, "--pruner", "none",
                 "--keep-models", "0", cwd=tmp_path, env=child_env(CXR_FEATURE_CACHE_GB="0"))  # fmt: skip

    def both_workers() -> list[int]:
        pids = _worker_pids(proc.pid)
        return pids if len(pids) == 2 else []

    workers = wait_until(both_workers, 120, 0.5, what="both workers starting")
    os.kill(workers[0], signal.SIGKILL)  # what the kernel's out-of-memory killer does
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-2000:]
    assert "must exit cleanly, but it stopped with exit code -9" in err
    complete = [
        r for r in ResultStore(f"sqlite:///{tmp_path / 'optuna.db'}").trials("cxr-search") if r.state == "COMPLETE"
    ]
    assert len(complete) >= 2, "the surviving worker runs its own share"
