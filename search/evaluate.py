"""``python -m search.evaluate --study NAME --trial N``: the one place the test split is used.

Writes the trial's test metrics to the results store as a row with ``split = 'test'``; they
are shown next to the validation figures and never used to rank.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrdata import DatasetError, ImageArrays, Manifest, Split
from search._errors import SearchError
from search._study import StudyInfo
from search.metrics import TrialMetrics
from search.space import TrialConfig
from search.store import ResultStore, TrialRow

__all__ = ["Evaluation", "evaluate_trial", "main"]


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


def evaluate_trial(storage: str, study: str, trial: int | None, *, data: str | None = None) -> Evaluation:
    """Measure a stored model on the test split and store the figures as a ``split='test'`` row."""
    import keras

    from cxrdata._pipeline import make_dataset
    from search._records import download_model, find_trial, study_info, study_manifest
    from search._trial import TrialData
    from search.metrics import compute_metrics

    info = study_info(storage, study)
    store = ResultStore(storage)
    row = find_trial(store, study, trial)
    config = TrialConfig.from_json(row.config_json)
    manifest = study_manifest(data or info.data_path, info.cache_dir, info.dataset_fingerprint)
    trial_data = TrialData(manifest, cache_dir=Path(info.cache_dir), split_seed=info.split_seed)
    split = trial_data.split(config.scheme)
    if split.fingerprint != row.split_fingerprint:
        raise SearchError(
            f"The split must be the one the trial was trained on, but its fingerprint is {split.fingerprint} "
            f"and trial {row.trial_number} recorded {row.split_fingerprint}."
        )
    arrays = trial_data.arrays(config.image_size, config.crop)
    model = keras.models.load_model(download_model(row, info), safe_mode=True)
    test = split.indices["test"][arrays.valid[split.indices["test"]]]
    if len(test) == 0:
        raise SearchError(f"The test split must hold images, but it is empty for study {study!r}.")
    proba = model.predict(make_dataset(arrays, test, split.labels, batch_size=config.batch_size), verbose=0)
    metrics = compute_metrics(split.labels[test], proba, split.scheme.class_names, split="test")
    test_row = TrialRow(
        **{c.key: getattr(row, c.key) for c in TrialRow.__table__.columns if c.key not in ("id", "created_at")}
    )
    test_row.split = "test"
    for name in ("accuracy", "balanced_accuracy", "covid_sensitivity", "covid_specificity", "covid_ppv"):
        setattr(test_row, name, getattr(metrics, name))
    for name in ("covid_npv", "covid_auc", "roc_auc"):
        setattr(test_row, name, getattr(metrics, name))
    test_row.loss = None
    test_row.per_class_json = json.dumps(metrics.per_class)
    test_row.confusion_json = json.dumps(metrics.confusion)
    test_row.covid_roc_json = None if metrics.covid_roc is None else json.dumps(metrics.covid_roc)
    store.record(test_row)
    return Evaluation(row, metrics, model, split, arrays, info, manifest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.evaluate", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--trial", type=int, help="trial number (default: the top-ranked trial)")
    parser.add_argument("--storage", default="sqlite:///optuna.db")
    parser.add_argument("--data", help="dataset path on this machine (default: the study's)")
    args = parser.parse_args(argv)
    try:
        done = evaluate_trial(args.storage, args.study, args.trial, data=args.data)
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Trial {done.row.trial_number} on the test split ({done.metrics.n} images):")
    for name in ("accuracy", "covid_sensitivity", "covid_specificity", "covid_ppv", "roc_auc"):
        value = getattr(done.metrics, name)
        print(f"  {name:<18} {'-' if value is None else f'{value:.3f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
