"""``python -m search.evaluate --study NAME --trial N``: the one place the test split is used.

Writes the trial's test metrics to the results store as a row with ``split = 'test'``; they
are shown next to the validation figures and never used to rank. The COVID decision is the
trial's own operating point: the threshold chosen on its validation images for the study's
target, applied unchanged to the test images.

External validation: ``--external PATH [--name NAME]`` measures the trial (or, with
``--model DIR``, a folder written by search.export) on every usable image of another labelled
dataset instead, and stores the figures as a ``split = 'external:NAME'`` row of the trial,
which never ranks either (see ``search._external``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrdata import DatasetError, ImageArrays, Manifest, Scheme, Split
from search._errors import SearchError
from search._settings import check_settings
from search._study import StudyInfo
from search.metrics import OperatingTarget, TrialMetrics
from search.space import TrialConfig
from search.store import ResultStore, TrialRow, add_storage_argument

if TYPE_CHECKING:
    from search._external import ExternalResult

__all__ = [
    "Evaluation",
    "ExternalEvaluation",
    "StudyData",
    "evaluate_external",
    "evaluate_folder",
    "evaluate_trial",
    "load_trial_model",
    "main",
    "predict",
    "row_target",
    "store_external_row",
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
    store = ResultStore(storage)
    store.check_schema()  # an older results database: one sentence naming the upgrade, not a missing column
    manifest = study_manifest(data or info.data_path, info.cache_dir, info.dataset_fingerprint)
    lung_model = Path(info.lung_model) if info.lung_model else None
    trial_data = TrialData(manifest, cache_dir=Path(info.cache_dir), split_seed=info.split_seed, lung_model=lung_model)
    return StudyData(info, store, manifest, trial_data)


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
    return _load_trial(row, info)[0]


def _load_trial(row: TrialRow, info: StudyInfo) -> tuple[Any, list[tuple[str, float]]]:
    """The trial's stored model and its Grad-CAM ``(layer, weight)`` per model (one per fold model)."""
    from search._records import load_models
    from search.backbones import get_backbone
    from search.ensemble import build_ensemble
    from search.gradcam import gradcam_layer_of

    models = load_models(row, info)
    preferred = get_backbone(TrialConfig.from_json(row.config_json).backbone).gradcam_layer
    weights = [1 / len(models)] * len(models)
    layers = [(gradcam_layer_of(m, preferred), w) for m, w in zip(models, weights, strict=True)]
    if len(models) == 1:
        return models[0], layers
    return build_ensemble(models, weights, int(models[0].input_shape[1])), layers


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


def _beside(row: TrialRow, split: str) -> TrialRow:
    """A copy of the trial's validation row for another ``split`` (its config and identity)."""
    copy = TrialRow(
        **{c.key: getattr(row, c.key) for c in TrialRow.__table__.columns if c.key not in ("id", "created_at")}
    )
    copy.split = split
    copy.mistakes_json = None  # the validation row's misclassified images, not this split's
    return copy


def store_test_row(store: ResultStore, row: TrialRow, metrics: TrialMetrics) -> None:
    """The trial's test figures as a ``split='test'`` row beside its validation row (never ranked)."""
    from search._recording import metrics_to_row

    test_row = _beside(row, "test")
    for name in (*_FOCUS, "lung_mask_source"):  # lung focus is measured on validation only, never on the test split
        setattr(test_row, name, None)
    metrics_to_row(test_row, metrics)
    test_row.loss = None
    test_row.folds, test_row.fold_spread_json = None, None  # one measurement of one model
    store.record(test_row)


_OPERATING = (
    "op_target", "covid_threshold", "op_sensitivity", "op_sensitivity_low", "op_sensitivity_high", "op_specificity",
    "op_specificity_low", "op_specificity_high",
)  # fmt: skip
_FOCUS = (
    "lung_focus", "lung_focus_std", "lung_focus_ratio", "pointing_game", "lung_focus_n", "lung_focus_blank",
    "hidden_lungs_auc",
)  # fmt: skip


def store_external_row(store: ResultStore, row: TrialRow, result: ExternalResult) -> None:
    """The trial's figures on an external set as a ``split='external:NAME'`` row beside its
    validation and test rows (never ranked); what it was measured on in ``external_json``."""
    from search._recording import metrics_to_row

    external = _beside(row, result.set.split)
    for name in _OPERATING + _FOCUS + ("lung_mask_source",):  # nothing of the validation row's own measurements
        setattr(external, name, None)
    metrics_to_row(external, result.metrics)
    undefined = set(result.undefined)
    for name in undefined:  # one class: no figure that needs the other
        setattr(external, name, None)
    if "covid_sensitivity" in undefined:
        external.covid_sensitivity_low = external.covid_sensitivity_high = None
    if "covid_specificity" in undefined:
        external.covid_specificity_low = external.covid_specificity_high = None
    if result.focus is not None:
        f = result.focus
        external.lung_focus, external.lung_focus_std, external.lung_focus_ratio = f.energy, f.energy_std, f.ratio
        external.pointing_game, external.lung_focus_n, external.lung_focus_blank = f.pointing, f.n, f.blank
        external.lung_mask_source = result.focus_source
    external.loss = None
    external.folds, external.fold_spread_json = None, None
    summary = {k: v for k, v in result.summary().items() if k not in ("per_class", "confusion")}  # columns already
    external.external_json = json.dumps(summary, default=str)
    store.record(external)


@dataclass
class ExternalEvaluation:
    """A model measured on an external set, and where its figures went."""

    result: ExternalResult
    what: str  # the model, in words
    stored: str  # where the row was stored, or why it was not (a sentence)


def _threshold_from(threshold: float | None, target: OperatingTarget | None, whose: str) -> str:
    if threshold is None:
        return f"{whose} has no COVID threshold"
    if target is None:
        return f"{whose}'s threshold, given at export"
    return f"{whose}'s threshold, chosen on validation for COVID {target.kind} {target.value:g}"


def evaluate_external(
    storage: str, study: str, trial: int | None, external: str, name: str | None = None, *, data: str | None = None
) -> ExternalEvaluation:
    """Measure a trial's stored model on every usable image of ``external`` and store the figures
    as a ``split='external:NAME'`` row of the trial (never ranked)."""
    from cxrdata import get_scheme
    from search._external import (
        StudyHashes,
        check_path,
        default_segmenter,
        external_name,
        gradcam_of,
        measure_external,
        prepare_external,
    )
    from search._records import find_trial

    name = external_name(external, name)
    check_path(external)
    sd = study_data(storage, study, data)
    row = find_trial(sd.store, study, trial, ranking=sd.info.ranking)
    config = TrialConfig.from_json(row.config_json)
    prepared = prepare_external(external, name, get_scheme(config.scheme), StudyHashes.of(sd.manifest))
    model, layers = _load_trial(row, sd.info)
    target = row_target(row, sd.info)
    result = measure_external(
        model,
        config,
        prepared,
        threshold=row.covid_threshold,
        target=target,
        threshold_from=_threshold_from(row.covid_threshold, target, "the trial"),
        heatmaps=gradcam_of(model, layers),
        segmenter=default_segmenter(sd.info.lung_model),
        cache_dir=Path(sd.info.cache_dir),
    )
    store_external_row(sd.store, row, result)
    return ExternalEvaluation(
        result,
        f"Trial {row.trial_number} of study {study!r}",
        f"Stored as split '{prepared.split}' of trial {row.trial_number} (never used to rank).",
    )


def evaluate_folder(folder: str | Path, external: str, name: str | None, storage: str) -> ExternalEvaluation:
    """Measure an exported model (``search.export``'s folder) on every usable image of ``external``.

    The figures are stored on the trial when the folder holds one trial's own model and its study
    is in ``storage``; otherwise they are printed only, and the sentence says why.
    """
    from search._external import (
        HASHES_FILE,
        StudyHashes,
        check_path,
        default_segmenter,
        external_name,
        gradcam_of,
        measure_external,
        prepare_external,
    )
    from search.predict import (
        Predictor,
        read_card,  # the checks predict makes of a card
    )

    folder = Path(folder)
    name = external_name(external, name)
    check_path(external)
    card = read_card(folder)
    scheme = _card_scheme(card, folder)
    hashes, no_hashes = None, None
    hashes_name = card.get("files", {}).get("dataset_hashes")
    if hashes_name is None:
        no_hashes = f"'{folder}' was exported before search.export wrote the study's image hashes ({HASHES_FILE})"
    else:
        hashes = StudyHashes.read(_in_folder(folder, hashes_name, "files.dataset_hashes"))
    prepared = prepare_external(external, name, scheme, hashes, no_hashes=no_hashes)
    predictor = Predictor(folder)
    config = _card_config(card)
    decision = card["decision"]
    target = None
    if isinstance(decision.get("target"), dict):
        target = OperatingTarget(str(decision["target"]["kind"]), float(decision["target"]["value"]))
    if card.get("kind") == "ensemble":
        layers = [(str(layer), float(weight)) for layer, weight in card["gradcam"]["members"]]
    else:
        layers = [(str(card["gradcam_layer"]), 1.0)]
    segmenter = None
    if config.input_region != "full":
        segmenter = _in_folder(folder, card["files"]["segmenter"], "files.segmenter")
    result = measure_external(
        predictor.model,
        config,
        prepared,
        threshold=predictor.threshold,
        target=target,
        threshold_from=_threshold_from(predictor.threshold, target, "the model card"),
        heatmaps=gradcam_of(predictor.model, layers),
        segmenter=segmenter if segmenter is not None else default_segmenter(None),
    )
    what = f"The model in '{folder}'"
    return ExternalEvaluation(result, what, _store_on_trial(card, storage, result))


def _in_folder(folder: Path, name: Any, key: str) -> Path:
    path = folder / str(name)
    if not isinstance(name, str) or Path(name).name != name or not path.is_file():
        raise SearchError(
            f"The model card '{folder / 'model_card.json'}' must give `{key}` as a file in '{folder}', "
            f"but got {name!r}."
        )
    return path


def _card_scheme(card: dict[str, Any], folder: Path) -> Scheme:
    from cxrdata import SCHEMES

    scheme = SCHEMES.get(str(card.get("scheme")))
    if scheme is None or list(scheme.class_names) != card["classes"]:
        raise SearchError(
            f"The model card '{folder / 'model_card.json'}' must give `scheme` as one of {', '.join(SCHEMES)} "
            f"with the card's classes in its order, but got {card.get('scheme')!r} for {card['classes']}."
        )
    return scheme


def _card_config(card: dict[str, Any]) -> TrialConfig:
    """What the exported model sees, as a TrialConfig: the card's input (size, crop, region), scheme and batch size."""
    members = card.get("members") or [{}]
    lead = card.get("config") or (members[0].get("config") if isinstance(members[0], dict) else None) or {}
    fields: dict[str, Any] = {
        "backbone": "exported", "freeze_depth": 0.0, "head_width": 1, "dropout": 0.0, "learning_rate": 1e-3,
        "augment_strength": 0.0,
    }  # fmt: skip
    fields |= {k: v for k, v in lead.items() if k in ("backbone", "batch_size")} if isinstance(lead, dict) else {}
    inp = card["input"]
    fields |= {
        "scheme": card["scheme"],
        "image_size": int(inp["size"]),
        "crop": float(inp["crop_fraction_per_side"]),
        "input_region": str(inp.get("region", "full")),
    }
    return TrialConfig.from_dict(fields)


def _store_on_trial(card: dict[str, Any], storage: str, result: ExternalResult) -> str:
    """Store the figures on the trial the folder holds, or say in one sentence why they were printed only."""
    from search.store import mask_url, parse_url

    why = "Not stored (printed only): "
    if card.get("trial") is None:  # one cross-validated trial's fold models are still that trial's model
        return why + "the model is an ensemble of several trials, not one trial of a study."
    if card.get("refit"):
        return why + "the model was trained again at export (--refit), so it is not the trial's stored model."
    study, number, engine = str(card.get("study")), card["trial"], str(card.get("engine") or "optuna")
    parsed = parse_url(storage)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:" and not Path(database).is_file():
        return why + f"there is no results database at {mask_url(storage)} (give the study's with --storage)."
    store = ResultStore(storage)
    try:
        store.check_schema()
        rows = [r for r in store.trials(study, engine=engine) if r.trial_number == number]
        if not rows:
            return why + f"trial {number} of study {study!r} is not in {mask_url(storage)}."
        split_fingerprint = (card.get("dataset") or {}).get("split_fingerprint")
        if rows[0].split_fingerprint != split_fingerprint:
            return why + (
                f"trial {number} of study {study!r} in {mask_url(storage)} was trained on split "
                f"{rows[0].split_fingerprint}, the exported model on {split_fingerprint}."
            )
        store_external_row(store, rows[0], result)
    except SearchError as exc:
        return why + str(exc)
    finally:
        store.dispose()
    return f"Stored as split '{result.set.split}' of trial {number} of study {study!r} (never used to rank)."


_EPILOG = """\
the test split (once; stored as split 'test', never ranked):
  python -m search.evaluate --study S [--trial N] [--data PATH]
an external labelled dataset (stored as split 'external:NAME', never ranked):
  python -m search.evaluate --study S [--trial N] [--data PATH] --external PATH [--name NAME]
  python -m search.evaluate --model DIR --external PATH [--name NAME] [--storage URL]
"""


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()
    parser = argparse.ArgumentParser(
        prog="python -m search.evaluate",
        description=(__doc__ or "").splitlines()[0],
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="the study whose trial to measure")
    which.add_argument("--model", type=Path, help="a folder written by search.export (needs --external)")
    parser.add_argument("--trial", type=int, help="trial number (default: the top-ranked trial)")
    add_storage_argument(parser)
    parser.add_argument("--data", help="the study's dataset: its path on this machine (default: the study's)")
    parser.add_argument(
        "--external", metavar="PATH", help="measure on this other labelled dataset (any layout cxrdata reads)"
    )
    parser.add_argument(
        "--name", help="the external set's name in the results (default: its folder's name): letters, digits, . _ -"
    )
    args = parser.parse_args(argv)
    if args.model is not None and args.external is None:
        parser.error("--model needs --external PATH: an exported model is measured on an external dataset")
    if args.model is not None and (args.trial is not None or args.data is not None):
        parser.error("--trial and --data go with --study, not with --model")
    if args.name is not None and args.external is None:
        parser.error("--name names an external dataset: give --external PATH too")
    try:
        if args.external is not None:
            if args.model is not None:
                external = evaluate_folder(args.model, args.external, args.name, args.storage)
            else:
                external = evaluate_external(
                    args.storage, args.study, args.trial, args.external, args.name, data=args.data
                )
            print(f"{external.what} on an external dataset (measured once, never used to rank or choose):")
            print("\n".join(external.result.lines()))
            print(external.stored)
            return 0
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
