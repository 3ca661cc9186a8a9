"""The model card: what was exported, how it decides, its figures with intervals, and its caveats."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from search.metrics import TrialMetrics
from search.store import MIN_SPECIFICITY, TrialRow, decides_without_lungs, focus_like_flat_map, meets_floor

__all__ = [
    "INTENDED_USE",
    "WARNING",
    "caveats",
    "external_markdown",
    "fmt",
    "markdown",
    "result_caveats",
    "row_summary",
    "summary",
    "versions",
    "with_ci",
]

_FIGURES = (
    "accuracy", "balanced_accuracy", "covid_sensitivity", "covid_specificity", "covid_ppv", "covid_npv", "covid_auc",
    "roc_auc",
)  # fmt: skip

WARNING = (
    "Research model from an automated search. Not a medical device and not validated for clinical use; "
    "do not use it to diagnose, triage or exclude COVID-19 in patients."
)
INTENDED_USE = (
    "Research and method development on chest X-rays: comparing transfer-learning models, studying shortcuts, "
    "and as a baseline for properly validated work."
)


def versions() -> dict[str, str]:
    out = {}
    for name in ("cxr-search", "tensorflow", "tensorflow-cpu", "keras", "numpy", "optuna", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def summary(m: TrialMetrics) -> dict[str, Any]:
    """The figures of one split, flat, for the card (argmax figures, then the operating point)."""
    out: dict[str, Any] = {
        "split": m.split,
        "n": m.n,
        **{name: getattr(m, name) for name in _FIGURES},
        "covid_sensitivity_ci": m.covid_sensitivity_ci,
        "covid_specificity_ci": m.covid_specificity_ci,
        "per_class": m.per_class,
        "confusion": m.confusion,
    }
    op = m.operating
    out["at_threshold"] = (
        None
        if op is None
        else {
            "threshold": op.threshold,
            "sensitivity": op.sensitivity,
            "sensitivity_ci": op.sensitivity_ci,
            "specificity": op.specificity,
            "specificity_ci": op.specificity_ci,
        }
    )
    return out


def row_summary(row: TrialRow) -> dict[str, Any]:
    """The validation figures a trial row stored (for trials recorded without their predictions)."""
    out: dict[str, Any] = {"split": "val", "n": None, **{name: getattr(row, name) for name in _FIGURES}}
    out["per_class"] = json.loads(row.per_class_json) if row.per_class_json else None
    out["confusion"] = json.loads(row.confusion_json) if row.confusion_json else None
    out["at_threshold"] = (
        None
        if row.covid_threshold is None
        else {
            "threshold": row.covid_threshold,
            "sensitivity": row.op_sensitivity,
            "sensitivity_ci": (row.op_sensitivity_low, row.op_sensitivity_high),
            "specificity": row.op_specificity,
            "specificity_ci": (row.op_specificity_low, row.op_specificity_high),
        }
    )
    return out


def fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def with_ci(value: Any, ci: Any) -> str:
    if value is None:
        return "n/a"
    return fmt(value) + ("" if not ci or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _metric_rows(val: dict[str, Any], test: dict[str, Any]) -> str:
    rows = []
    for side in (val, test):
        op = side.get("at_threshold") or {}
        side["_op_sens"] = with_ci(op.get("sensitivity"), op.get("sensitivity_ci"))
        side["_op_spec"] = with_ci(op.get("specificity"), op.get("specificity_ci"))
    for key, label in (
        ("_op_sens", "COVID sensitivity at the threshold [95% CI]"),
        ("_op_spec", "COVID specificity at the threshold [95% CI]"),
        ("covid_auc", "COVID AUC"),
        ("covid_sensitivity", "COVID sensitivity (argmax)"),
        ("covid_specificity", "COVID specificity (argmax)"),
        ("covid_ppv", "COVID PPV (argmax)"),
        ("accuracy", "accuracy (argmax)"),
        ("roc_auc", "AUC (macro OvR)"),
    ):
        cells = [v if isinstance(v := side.get(key), str) else fmt(v) for side in (val, test)]
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    for side in (val, test):
        side.pop("_op_sens"), side.pop("_op_spec")
    return "\n".join(rows)


def _members_text(card: dict[str, Any]) -> str:
    lines = [
        f"  - trial {m['trial']} ({m['backbone']}, freeze {m['config']['freeze_depth']:g}, {m['image_size']} px): "
        f"weight {m['weight']:.2f}" + (f" ({m['models']} fold models)" if m["models"] > 1 else "")
        for m in card["members"]
    ]
    return "\n".join(lines)


_REGION_TEXT = {
    "lung_crop": "cut the box around the lungs (grown by {margin:g} of the side) and resize it back to the input size",
    "lung_mask": "set every pixel outside the lungs (grown by {margin:g} of the side) to black",
    "lung_crop_mask": (
        "set every pixel outside the lungs (grown by {margin:g} of the side) to black, then cut the box around "
        "them and resize it back to the input size"
    ),
}


def _region_text(card: dict[str, Any]) -> str:
    """How the input region is cut, for cards that have one (older cards see the whole image)."""
    region = card["input"].get("region", "full")
    if region == "full":
        return ""
    margin = float(card["input"].get("region_margin", 0.0))
    how = _REGION_TEXT[region].format(margin=margin)
    return f"; then segment the lungs with `{card['files'].get('segmenter')}` (shipped here) and {how}"


def _focus_training_text(card: dict[str, Any]) -> str:
    """A line for models trained to keep their evidence in the lungs (older cards have no weight)."""
    weight = float((card.get("config") or {}).get("focus_weight", 0.0))
    if weight <= 0:
        return ""
    return (
        f"\n- Training: cross-entropy plus {weight:g} x the share of the COVID Grad-CAM evidence outside the "
        "lungs (segmented or drawn masks of the training images). The model was taught where to look; its lung "
        "focus is still measured, on validation images, as for any other model."
    )


def _hidden_text(card: dict[str, Any]) -> str:
    """The COVID AUC with the lungs hidden (older cards have none)."""
    auc = card.get("hidden_lungs_auc")
    what = "COVID AUC on validation X-rays with the lungs hidden (0.5: it cannot tell COVID without the lungs)"
    if auc is None:
        return f"{what}: not measured."
    whose = {
        "ensemble": " (the ensemble itself)",
        "members": " (the highest of its members)",
        "members, before the refit": " (the highest of its members, measured before the refit)",
    }.get(card.get("hidden_lungs_auc_of") or "", "")
    return f"{what}: {fmt(auc)}{whose}."


def markdown(card: dict[str, Any]) -> str:
    val, test = card["validation"], card["test"]
    caveats = "\n".join(f"- {c}" for c in card["caveats"]) or "- none found"
    if len(card["members"]) > 1:
        title = f"ensemble of {len(card['members'])} trials of {card['study']} ({card['scheme']} scheme)"
        what = (
            "- Model: the weighted average of its members' probabilities (greedy ensemble selection with "
            f"replacement on validation log loss, {card['selection']['rounds']} rounds, over the top "
            f"{len(card['selection']['pool'])} trials with a stored model):\n{_members_text(card)}"
        )
    else:
        m = card["members"][0]
        title = f"{m['backbone']} ({card['scheme']} scheme), trial {m['trial']} of {card['study']}"
        what = f"- Model: trial {m['trial']} of the study, one model."
        if m["models"] > 1:
            what = (
                f"- Model: trial {m['trial']} of the study: its {m['models']} cross-validation fold models, averaged."
            )
    if card["refit"]:
        what += (
            "\n- Refit: every member was trained again on train+validation for the epochs its early stopping "
            "found; the threshold and the validation column come from the models before the refit."
        )
    decision = card["decision"]
    region = _region_text(card)
    return f"""# Model card: {title}

> **{WARNING}**

Intended use: {INTENDED_USE}

{what}
- Classes (output order): {", ".join(card["classes"])}; COVID is output {card["covid_class_index"]}.
- Input: {card["input"]["size"]}x{card["input"]["size"]} RGB, float32 in [0, 255]; decode any PNG/JPEG to 8-bit RGB,
  cut {card["input"]["crop_fraction_per_side"]:g} of each side, resize bilinearly (squash) to the input size{region}.
  `python -m search.predict --model DIR IMAGE...` does exactly this.
- Decision: {decision["rule"]}.
- Lung focus (Grad-CAM energy inside the lungs): {fmt(card["lung_focus"])}.{_focus_training_text(card)}
- {_hidden_text(card)}
- Dataset fingerprint {card["dataset"]["fingerprint"]}, split fingerprint {card["dataset"]["split_fingerprint"]}.

| metric | {"validation (out-of-fold)" if val["split"] == "oof" else "validation"} | test (measured once, at export) |
|---|---|---|
{_metric_rows(val, test)}

Validation figures chose the model and its threshold; only the test column is an estimate for new images
from the same sources, and even it says nothing about other hospitals, devices or populations.
{external_markdown(card)}

Caveats (where a result could be a shortcut):
{caveats}

Files: {", ".join(card["files"].values())}. Reloaded and checked against the trained model: {card["parity"]}.
"""


def _undefined(value: Any, ci: Any) -> str:
    return "undefined" if value is None else with_ci(value, ci)


def external_markdown(card: dict[str, Any]) -> str:
    """The card's "External validation" section: each other dataset the model was measured on at export."""
    from search._external import focus_text, left_out_text

    sets = card.get("external_validation") or []
    if not sets:
        return ""
    rows, notes = [], []
    for e in sets:
        op = e.get("at_threshold") or {}
        images = ", ".join(f"{c} {n}" for c, n in (e.get("images") or {}).items() if n)
        focus = e.get("lung_focus")
        rows.append(
            f"| {e['name']} | {e['n']} ({images}) | {_undefined(op.get('sensitivity'), op.get('sensitivity_ci'))} | "
            f"{_undefined(op.get('specificity'), op.get('specificity_ci'))} | "
            f"{'undefined' if e.get('covid_auc') is None else fmt(e['covid_auc'])} | "
            f"{'n/a' if not focus or focus.get('energy') is None else fmt(focus['energy'])} |"
        )
        note = f" **{e['note']}.**" if e.get("note") else ""
        notes.append(
            f"- {e['name']}: `{e['path']}` (fingerprint {e['fingerprint']}).{note} Left out: "
            f"{left_out_text(e.get('left_out') or {})}. {focus_text(focus).capitalize()}."
        )
    return (
        "\n## External validation\n\n"
        "Measured once at export on other labelled datasets, at the threshold above; never used to choose the "
        "model, its members or its threshold.\n\n"
        "| external set | images | COVID sensitivity at the threshold [95% CI] | "
        "COVID specificity at the threshold [95% CI] | COVID AUC | lung focus |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"
    )


def caveats(
    split: Any, manifest: Any, choice: Any, validation: dict[str, Any], hidden_lungs_auc: float | None = None
) -> list[str]:
    from cxrdata import leak_report

    report = leak_report(manifest, split)
    out = [
        f"Source '{s}' supplies only {label} images: the model may have learnt the source."
        for s, label in report.confounded_sources.items()
    ]
    if report.cross_split_duplicates or report.cross_split_patients:
        out.append("Duplicates or patients cross the splits: test figures may be optimistic.")
    rows = [m.row for m in choice.members]
    ratios = [r.lung_focus_ratio for r in rows]
    focus = None if any(r.lung_focus is None for r in rows) else min(r.lung_focus for r in rows)
    ratio = None if any(r is None for r in ratios) else min(r for r in ratios if r is not None)
    return out + result_caveats(validation.get("covid_specificity"), focus, ratio, hidden_lungs_auc)


def members_hidden_lungs_auc(rows: list[TrialRow]) -> float | None:
    """The highest COVID AUC with the lungs hidden among the members (None if any is unmeasured)."""
    values = [r.hidden_lungs_auc for r in rows]
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def result_caveats(
    specificity: float | None,
    lung_focus: float | None,
    focus_ratio: float | None,
    hidden_lungs_auc: float | None = None,
) -> list[str]:
    """What the trial's own validation figures say about a possible shortcut or a degenerate model."""
    out = []
    if not meets_floor(specificity):
        out.append(
            f"Validation COVID specificity is {'unknown' if specificity is None else f'{specificity:.2f}'}, "
            f"below {MIN_SPECIFICITY:.2f}: the model calls many other X-rays COVID, so its sensitivity means little."
        )
    if lung_focus is None:
        out.append("Lung focus was not measured: it is unknown whether the model looks at the lungs.")
    elif focus_like_flat_map(focus_ratio):
        out.append(
            f"Grad-CAM evidence is no more concentrated in the lungs than a uniform map would be (lung focus / "
            f"lung area {focus_ratio:.2f} < 1): the model may rely on what lies outside the lungs."
        )
    if decides_without_lungs(hidden_lungs_auc):
        out.append(
            f"With the lungs hidden the model still tells COVID from the other classes (validation COVID AUC "
            f"{hidden_lungs_auc:.2f}; 0.5 is chance): part of its decision can come from what lies outside the "
            "lungs, wherever its Grad-CAM evidence sits. A model searched with `--regions lung_mask` sees only the "
            "lungs and cannot."
        )
    return out
