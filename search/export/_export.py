"""``export()``: package a study's best model, measure it once on the test split, check what was written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from cxrdata import REGION_MARGIN, Split
from search._errors import SearchError
from search._external import (
    HASHES_FILE,
    ExternalSet,
    StudyHashes,
    check_path,
    default_segmenter,
    external_name,
    gradcam_of,
    measure_external,
    prepare_external,
)
from search._hidden import hidden_lungs_auc, hidden_lungs_entries, hidden_lungs_proba
from search.ensemble import build_ensemble
from search.evaluate import (
    StudyData,
    predict,
    row_target,
    store_external_row,
    store_test_row,
    study_data,
    usable_test_indices,
)
from search.export._card import INTENDED_USE, WARNING, caveats, markdown, members_hidden_lungs_auc, summary, versions
from search.export._files import FORMATS, check_formats, check_out, staged, verify, write
from search.export._members import Choice, Member, check_choice_args, choose, load_members, validation_figures
from search.metrics import COVID_LABEL, OperatingTarget, TrialMetrics, compute_metrics
from search.space import TrialConfig

__all__ = ["SAMPLE_IMAGES", "ExportResult", "export"]

SAMPLE_IMAGES = 16


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    card: dict[str, Any]


def _decision(threshold: float | None, target: OperatingTarget, given: bool) -> dict[str, Any]:
    if threshold is None:
        return {"rule": "the class with the highest probability", "threshold": None, "target": None}
    how = "given at export" if given else f"chosen on validation for COVID {target.kind} {target.value:g}"
    return {
        "rule": f"COVID when its probability >= {threshold:.6g} ({how}); otherwise the likeliest other class",
        "threshold": threshold,
        "target": None if given else {"kind": target.kind, "value": target.value},
    }


def _member_card(m: Member, models: list[Any]) -> dict[str, Any]:
    from search.backbones import get_backbone
    from search.gradcam import gradcam_layer_of

    return {
        "trial": m.row.trial_number,
        "engine": m.row.engine,
        "backbone": m.config.backbone,
        "weight": m.weight,
        "image_size": m.config.image_size,
        "gradcam_layer": gradcam_layer_of(models[0], get_backbone(m.config.backbone).gradcam_layer),
        "models": len(models),  # a cross-validated trial brings its fold models, sharing its weight
        "validation_lung_focus": m.row.lung_focus,
        "validation_hidden_lungs_auc": m.row.hidden_lungs_auc,
        "best_epoch": m.row.best_epoch,
        "config": asdict(m.config),
    }


def _assemble(choice: Choice, per_member: list[list[Any]], size: int) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    """The exported model, the members' card entries and the Grad-CAM (layer, weight) of each model.

    Members are flattened into one list of models: a cross-validated member's fold models
    share its weight equally, so no ensemble is nested in another (Grad-CAM reads flat models).
    """
    cards = [_member_card(m, models) for m, models in zip(choice.members, per_member, strict=True)]
    flat = [(model, m.weight / len(ms)) for m, ms in zip(choice.members, per_member, strict=True) for model in ms]
    gradcam = [[card["gradcam_layer"], w] for card, ms in zip(cards, per_member, strict=True) for _, w in
               zip(ms, [card["weight"] / len(ms)] * len(ms), strict=True)]  # fmt: skip
    if len(flat) == 1:
        return flat[0][0], cards, gradcam
    return build_ensemble([f for f, _ in flat], [w for _, w in flat], size), cards, gradcam


def export(
    storage: str,
    study: str,
    out: Path,
    *,
    trial: int | None = None,
    ensemble: int | None = None,
    members: Sequence[int] | None = None,
    refit: bool = False,
    formats: Sequence[str] = FORMATS,
    data: str | None = None,
    threshold: float | None = None,
    target: OperatingTarget | None = None,
    force: bool = False,
    external: Sequence[tuple[str, str | None]] = (),
) -> ExportResult:
    """Package a study's best model: by default the greedy ensemble of its top trials, or one
    trial (``trial``, or ``ensemble=1``), optionally refitted on train+validation.

    The COVID threshold is chosen on validation for the study's operating target (or
    ``target``, or given as ``threshold``); the test split is read once, here. Each
    ``external`` ``(path, name or None)`` is another labelled dataset the exported model is
    measured on once, into the card (never used to choose anything).
    """
    formats = check_formats(formats)
    check_out(out, force)
    check_choice_args(trial, ensemble, members)
    if threshold is not None and not 0 < threshold < 1:
        raise SearchError(f"`0 < threshold < 1` must hold, but got threshold={threshold}.")
    named = _external_names(external)
    sd = study_data(storage, study, data)
    choice = choose(sd, study, trial, ensemble, members)
    lead = choice.members[0]
    split = sd.split(lead.row)
    hashes = StudyHashes.of(sd.manifest)
    # Read before anything is trained or written: a bad external set costs nothing.
    externals = [prepare_external(path, name, split.scheme, hashes) for path, name in named]
    classes = list(split.scheme.class_names)
    target = target or row_target(lead.row, sd.info)
    validation, threshold_used = validation_figures(choice, classes, target, threshold)
    per_member = load_members(choice, sd, refit)
    size = max(m.config.image_size for m in choice.members)
    model, member_cards, gradcam_members = _assemble(choice, per_member, size)

    arrays = sd.inputs(replace(lead.config, image_size=size))  # members share the lead's region (choose())
    test = usable_test_indices(split, arrays, study)
    proba = predict(model, arrays, test, split.labels, lead.config.batch_size)
    tested = compute_metrics(split.labels[test], proba, classes, split="test", target=target, threshold=threshold_used)
    if len(choice.members) == 1 and not refit:  # the trial's own model: its test row sits beside its validation row
        store_test_row(sd.store, lead.row, tested)

    card = _card(
        study, sd, choice, split, refit=refit, member_cards=member_cards, gradcam_members=gradcam_members,
        size=size, decision=_decision(threshold_used, target, given=threshold is not None),
        validation=validation, tested=tested,
        hidden=_hidden_lungs(model, sd, choice, split, replace(lead.config, image_size=size), refit),
    )  # fmt: skip
    images = np.asarray(arrays.images[test[:SAMPLE_IMAGES]], dtype=np.float32)
    with staged(out, force) as folder:  # `out` appears, or is replaced, only once every file is written and checked
        files = write(model, folder, formats)
        segmenter = _segmenter(lead.config, sd)
        if segmenter is not None:  # predict cuts the region from a raw X-ray as the trial did
            shutil.copyfile(segmenter, folder / SEGMENTER_FILE)
            files["segmenter"] = SEGMENTER_FILE
        # The study's image hashes: `search.evaluate --model DIR --external PATH` leaves out copies of them.
        (folder / HASHES_FILE).write_text(hashes.to_json(), encoding="utf-8")
        files["dataset_hashes"] = HASHES_FILE
        card |= {"files": files, "parity": verify(folder, model.predict(images, verbose=0), images, files)}
        card["external_validation"] = [
            _external(model, ext, sd, lead.config, size, gradcam_members, threshold_used, given=threshold is not None,
                      target=target, store_on=lead.row if len(choice.members) == 1 and not refit else None)
            for ext in externals
        ]  # fmt: skip
        (folder / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
        (folder / "MODEL_CARD.md").write_text(markdown(card))
    return ExportResult(out, card)


SEGMENTER_FILE = "lung_segmenter.keras"


def _hidden_lungs(
    model: Any, sd: StudyData, choice: Choice, split: Split, config: TrialConfig, refit: bool
) -> dict[str, Any]:
    """The exported model's COVID AUC with the lungs hidden (``search._hidden``), and whose it is.

    An ensemble of one-split members, not refitted, is measured itself on the validation images,
    which none of its members trained on. Otherwise the members' stored figures stand in (the
    highest): a single trial's is its own, and a refitted model or a bag of fold models has
    trained on the validation images, so measuring it there would flatter it.
    """
    rows = [m.row for m in choice.members]
    if len(rows) == 1 or refit or any((m.config.folds or 1) > 1 for m in choice.members):
        basis = "trial" if len(rows) == 1 else "members, before the refit" if refit else "members"
        return {"auc": members_hidden_lungs_auc(rows), "of": basis}
    entries = hidden_lungs_entries(sd.trial_data, config, split.indices["val"])
    proba = hidden_lungs_proba(model, sd.trial_data, config, entries)
    return {"auc": hidden_lungs_auc(split.labels[entries], proba), "of": "ensemble"}


def _external_names(external: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """Each external set's path and name (checked, distinct), before anything else is done."""
    named = [(path, external_name(path, name, "--external PATH:NAME")) for path, name in external]
    for path, _ in named:
        check_path(path)
    names = [name for _, name in named]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SearchError(
            f"Each external set must have its own name, but {', '.join(repr(n) for n in twice)} is given twice; "
            "name them with --external PATH:NAME."
        )
    return named


def _external(
    model: Any,
    ext: ExternalSet,
    sd: StudyData,
    config: TrialConfig,
    size: int,
    gradcam_members: list[Any],
    threshold: float | None,
    *,
    given: bool,
    target: OperatingTarget,
    store_on: Any,
) -> dict[str, Any]:
    """The exported model measured once on one external set, for the card (and, for one trial's own
    model, as its ``external:NAME`` row beside the test row)."""
    how = "given at export" if given else f"chosen on validation for COVID {target.kind} {target.value:g}"
    result = measure_external(
        model,
        replace(config, image_size=size),
        ext,
        threshold=threshold,
        target=None if given else target,
        threshold_from=f"the exported model's threshold, {how}"
        if threshold is not None
        else "the exported model has no COVID threshold",
        heatmaps=gradcam_of(model, [(str(layer), float(weight)) for layer, weight in gradcam_members]),
        segmenter=default_segmenter(sd.info.lung_model),
        cache_dir=Path(sd.info.cache_dir),
    )
    if store_on is not None:
        store_external_row(sd.store, store_on, result)
    return result.summary()


def _segmenter(config: TrialConfig, sd: StudyData) -> Path | None:
    """The lung segmenter a ``lung_crop`` or ``lung_mask`` model needs at predict time (every region but ``full``): the
    study's, else the packaged one (a study whose images all had dataset masks has none)."""
    if config.input_region == "full":
        return None
    segmenter = default_segmenter(sd.info.lung_model)
    if segmenter is None:
        raise SearchError(
            f"A model with `input_region={config.input_region}` must ship a lung segmenter, but the study has none "
            "and the packaged one is missing: reinstall cxr-search."
        )
    return segmenter


def _card(
    study: str,
    sd: StudyData,
    choice: Choice,
    split: Split,
    *,
    refit: bool,
    member_cards: list[dict[str, Any]],
    gradcam_members: list[dict[str, Any]],
    size: int,
    decision: dict[str, Any],
    validation: dict[str, Any],
    tested: TrialMetrics,
    hidden: dict[str, Any],
) -> dict[str, Any]:
    """The model card's content (without the files, written last)."""
    lead = choice.members[0]
    classes = list(split.scheme.class_names)
    focus = [(m.row.lung_focus, m.weight) for m in choice.members]
    single = len(gradcam_members) == 1  # an ensemble: also one cross-validated trial's bag of fold models
    return {
        "study": study,
        "kind": "single" if single else "ensemble",
        "refit": refit,
        "trial": lead.row.trial_number if len(choice.members) == 1 else None,
        "engine": lead.row.engine,
        "members": member_cards,
        "selection": None
        if choice.selection is None
        else {
            "method": "greedy ensemble selection with replacement on validation log loss (Caruana et al. 2004)",
            "rounds": len(choice.selection.losses),
            "pool": choice.pool,
            "validation_log_loss": list(choice.selection.losses),
        },
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": classes,
        "scheme": lead.config.scheme,
        "covid_class_index": COVID_LABEL,
        "input": {
            "size": size,
            "channels": "RGB",
            "dtype": "float32",
            "range": [0, 255],
            "crop_fraction_per_side": lead.config.crop,
            # What part of the X-ray the model sees; predict applies it with the shipped segmenter.
            "region": lead.config.input_region,
            "region_margin": REGION_MARGIN,
        },
        "decision": decision,
        "gradcam_layer": member_cards[0]["gradcam_layer"] if single else None,
        "gradcam": {"members": gradcam_members},
        "config": asdict(lead.config) if len(choice.members) == 1 else None,
        "validation": validation,
        "test": summary(tested),
        # One trial's measured focus; for an ensemble, its members' focus weighted like their probabilities.
        "lung_focus": None if any(f is None for f, _ in focus) else sum(f * w for f, w in focus if f is not None),
        # What the model can tell with the lungs hidden on validation, and whose figure it is (_hidden_lungs).
        "hidden_lungs_auc": hidden["auc"],
        "hidden_lungs_auc_of": hidden["of"],
        "dataset": {
            "path": sd.info.data_path,
            "fingerprint": sd.info.dataset_fingerprint,
            "split_fingerprint": lead.row.split_fingerprint,
            "split_counts": split.counts(),
        },
        "versions": versions(),
        "intended_use": INTENDED_USE,
        "warning": WARNING,
        "caveats": caveats(split, sd.manifest, choice, validation, hidden["auc"]),
    }
