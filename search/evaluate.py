"""``python -m search.evaluate --study NAME --trial N``: the one place the test split is used.

Writes the trial's test metrics to the results store as a row with ``split = 'test'``; they
are shown next to the validation figures and never used to rank. The COVID decision is the
trial's own operating point: the threshold chosen on its validation images for the study's
target, applied unchanged to the test images.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrdata import DatasetError, ImageArrays, Manifest, Split
from search._errors import SearchError
from search._settings import check_settings
from search._study import StudyInfo
from search.metrics import OperatingTarget, TrialMetrics
from search.space import TrialConfig
from search.store import ResultStore, TrialRow, add_storage_argument

__all__ = [
    "Evaluation",
    "StudyData",
    "evaluate_trial",
    "load_trial_model",
    "main",
    "predict",
    "row_target",
    "store_test_row",
    "study_data",
    "usable_test_indices",
]


@dataclass
class StudyData:
    """A study's dataset on this machine: what it was created with, checked by fingerprint."""

    info: StudyInfo
    store: ResultStore
    manifest: Manifest
    trial_data: Any  # search._trial.TrialData (TensorFlow loads only when it is used)

    def split(self, row: TrialRow) -> Split:
        """The split the trial was trained on (refused if the data or the split changed since)."""
        config = TrialConfig.from_json(row.config_json)
        split: Split = self.trial_data.split(config.scheme)
        if split.fingerprint != row.split_fingerprint:
            raise SearchError(
                f"The split must be the one the trial was trained on, but its fingerprint is {split.fingerprint} "
                f"and trial {row.trial_number} recorded {row.split_fingerprint}."
            )
        return split

    def inputs(self, config: TrialConfig) -> ImageArrays:
        """What a model of ``config`` sees: every entry at its size, with its input region."""
        arrays: ImageArrays = self.trial_data.inputs(config)
        return arrays


def study_data(storage: str, study: str, data: str | None = None) -> StudyData:
    from search._records import study_info, study_manifest
    from search._trial import TrialData

    info = study_info(storage, study)
    manifest = study_manifest(data or info.data_path, info.cache_dir, info.dataset_fingerprint)
    lung_model = Path(info.lung_model) if info.lung_model else None
    trial_data = TrialData(manifest, cache_dir=Path(info.cache_dir), split_seed=info.split_seed, lung_model=lung_model)
    return StudyData(info, ResultStore(storage), manifest, trial_data)


def row_target(row: TrialRow, info: StudyInfo) -> OperatingTarget:
    """The operating target the trial's threshold was chosen for (the study's, for older rows)."""
    if row.op_target:
        kind, value = row.op_target.split()
        return OperatingTarget(kind, float(value))
    return info.space.training.target


def usable_test_indices(split: Split, arrays: ImageArrays, study: str) -> np.ndarray:
    test = split.indices["test"][arrays.valid[split.indices["test"]]]
    if len(test) == 0:
        raise SearchError(f"The test split must hold images, but it is empty for study {study!r}.")
    return np.asarray(test)


def predict(model: Any, arrays: ImageArrays, indices: np.ndarray, labels: np.ndarray, batch_size: int) -> np.ndarray:
    from cxrdata import make_dataset

    return np.asarray(model.predict(make_dataset(arrays, indices, labels, batch_size=batch_size), verbose=0))


@dataclass
class Evaluation:
    """A trial's stored model measured on the test split, with what export needs next."""

    row: TrialRow
    metrics: TrialMetrics
    model: Any  # keras.Model
    split: Split
    arrays: ImageArrays
    info: StudyInfo
    manifest: Manifest


def load_trial_model(row: TrialRow, info: StudyInfo) -> Any:
    """The trial's stored model; a cross-validated trial's fold models averaged in one model."""
    import keras

    from search._records import download_models
    from search.ensemble import build_ensemble

    models = [keras.models.load_model(path, safe_mode=True) for path in download_models(row, info)]
    if len(models) == 1:
        return models[0]
    return build_ensemble(models, [1 / len(models)] * len(models), int(models[0].input_shape[1]))


def evaluate_trial(storage: str, study: str, trial: int | None, *, data: str | None = None) -> Evaluation:
    """Measure a stored model on the test split and store the figures as a ``split='test'`` row."""
    from search._records import find_trial
    from search.metrics import compute_metrics

    sd = study_data(storage, study, data)
    row = find_trial(sd.store, study, trial, ranking=sd.info.ranking)
    config = TrialConfig.from_json(row.config_json)
    split = sd.split(row)
    arrays = sd.inputs(config)
    model = load_trial_model(row, sd.info)
    test = usable_test_indices(split, arrays, study)
    proba = predict(model, arrays, test, split.labels, config.batch_size)
    metrics = compute_metrics(
        split.labels[test],
        proba,
        split.scheme.class_names,
        split="test",
        target=row_target(row, sd.info),
        threshold=row.covid_threshold,
    )
    store_test_row(sd.store, row, metrics)
    return Evaluation(row, metrics, model, split, arrays, sd.info, sd.manifest)


def store_test_row(store: ResultStore, row: TrialRow, metrics: TrialMetrics) -> None:
    """The trial's test figures as a ``split='test'`` row beside its validation row (never ranked)."""
    from search._recording import metrics_to_row

    test_row = TrialRow(
        **{c.key: getattr(row, c.key) for c in TrialRow.__table__.columns if c.key not in ("id", "created_at")}
    )
    test_row.split = "test"
    metrics_to_row(test_row, metrics)
    test_row.loss = None
    test_row.folds, test_row.fold_spread_json = None, None  # one measurement of one model
    store.record(test_row)


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()
    parser = argparse.ArgumentParser(prog="python -m search.evaluate", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--trial", type=int, help="trial number (default: the top-ranked trial)")
    add_storage_argument(parser)
    parser.add_argument("--data", help="dataset path on this machine (default: the study's)")
    args = parser.parse_args(argv)
    try:
        done = evaluate_trial(args.storage, args.study, args.trial, data=args.data)
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = done.metrics
    print(f"Trial {done.row.trial_number} on the test split ({m.n} images):")
    for name in ("accuracy", "covid_sensitivity", "covid_specificity", "covid_ppv", "covid_auc", "roc_auc"):
        value = getattr(m, name)
        print(f"  {name:<18} {'-' if value is None else f'{value:.3f}'}")
    if m.operating is not None:
        op = m.operating
        print(
            f"  at the validation threshold {op.threshold:.4f} (chosen for COVID {op.target.kind} "
            f"{op.target.value:g}): sensitivity {_pct(op.sensitivity, op.sensitivity_ci)}, "
            f"specificity {_pct(op.specificity, op.specificity_ci)}"
        )
    return 0


def _pct(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + ("" if ci is None else f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]")


if __name__ == "__main__":
    sys.exit(main())
