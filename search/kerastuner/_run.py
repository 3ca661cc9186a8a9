"""Run the KerasTuner engine on a study made by ``search.launch`` (one process)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_keras_tuner", "tuner_directory"]


def tuner_directory(artifacts: str | Path, cache_dir: str | Path) -> Path:
    """KerasTuner's own state lives beside the study's artifact folder (``keras-tuner/``), or
    beside its cache when the artifacts are in S3 (KerasTuner needs a local folder)."""
    beside = cache_dir if str(artifacts).startswith("s3://") else artifacts
    return Path(beside).parent / "keras-tuner"


def run_keras_tuner(
    storage: str,
    study_name: str,
    tuner: str,
    n_trials: int,
    *,
    data: str | None = None,
    keep_models: int = 5,
    deadline: float | None = None,
    quiet: bool = False,
) -> int:
    """Run up to ``n_trials`` more KerasTuner trials (resuming its state folder); return how many ran."""
    import optuna

    from search._runtime import open_runtime
    from search._study import check_engine_constraints
    from search.kerastuner._tuner import ENGINE, SpaceHyperModel, SpaceTuner, make_oracle

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runtime = open_runtime(storage, study_name, data=data)
    info = runtime.info
    check_engine_constraints(info.space, ENGINE)  # a study made with a constraint: refused
    engine = SpaceTuner(
        deadline=deadline,
        oracle=make_oracle(tuner, info.space, info.seed, max_trials=n_trials),
        hypermodel=SpaceHyperModel(info.space, info.weights, info.seed),
        data=runtime.data,
        recorder=runtime.recorder(ENGINE, keep_models),
        directory=tuner_directory(info.artifacts, info.cache_dir),
        project_name=f"{study_name}-{tuner}",
        artifacts_target=runtime.study,
        quiet=quiet,
    )
    before = len(engine.oracle.trials)
    engine.oracle.max_trials = before + n_trials  # "n more", also after a resume
    engine.search(verbose=0)  # our own line per trial (SpaceTuner) instead of KerasTuner's tables
    return len(engine.oracle.trials) - before
