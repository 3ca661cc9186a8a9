"""External validation: a model measured on every usable image of another labelled dataset.

COVID X-ray models learn hospital shortcuts that survive internal validation (DeGrave et al.,
Nature Machine Intelligence 2021); another hospital's images show whether a model survives
them. The external set is read with cxrdata like any dataset; its classes are mapped by the
model's scheme (images of classes the model does not know are counted and left out), copies of
the study's own images (by SHA-256, or by perceptual and difference hash within the bits
cxrdata's duplicate groups use) are counted and left out, and the model sees the rest exactly
as in its trial: same size, crop and input region, through ``TrialData``. The figures are the
test row's, at the threshold chosen on validation, plus lung focus where lung masks exist.

Nothing here chooses anything: the figures are stored as a ``split = 'external:NAME'`` row or
written into a model card, and never rank.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cxrdata import Entry, Manifest, Scheme, scan
from cxrdata._duplicates import NEAR_MAX_BITS
from search._errors import SearchError
from search.gradcam import LungFocus
from search.metrics import COVID_LABEL, OperatingTarget, TrialMetrics
from search.space import TrialConfig

__all__ = [
    "EXTERNAL_PREFIX",
    "HASHES_FILE",
    "ExternalResult",
    "ExternalSet",
    "StudyHashes",
    "check_name",
    "check_path",
    "default_segmenter",
    "external_name",
    "gradcam_of",
    "is_external",
    "measure_external",
    "parse_external",
    "prepare_external",
]

EXTERNAL_PREFIX = "external:"
HASHES_FILE = "dataset_hashes.json"  # written by search.export: the study's image hashes, for the duplicate check
NAME_MAX = 32
EXTERNAL_FOCUS_IMAGES = 512  # Grad-CAM reads every usable masked image of an external set, up to this many
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX - 1}}}")
_NAME_RULE = f"1 to {NAME_MAX} letters, digits, '.', '_' or '-' (the first a letter or digit)"
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_path(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        state = "does not exist" if not root.exists() else "is not a folder"
        raise SearchError(
            f"`--external` must be a folder of labelled images (one folder per class), but '{root}' {state}."
        )
    return root


def gradcam_of(model: Any, layers: Sequence[tuple[str, float]]) -> Callable[[np.ndarray], np.ndarray]:
    """The COVID Grad-CAM of a model's inputs: one model's at its layer, or an ensemble's members'
    weighted maps (``layers``: each member's ``(layer, weight)``, in member order)."""

    def heatmaps(images: np.ndarray) -> np.ndarray:
        if len(layers) == 1:
            from search.gradcam import gradcam

            return gradcam(model, layers[0][0], images, COVID_LABEL)
        from search.ensemble import ensemble_gradcam

        return ensemble_gradcam(model, [(str(n), float(w)) for n, w in layers], images, COVID_LABEL)

    return heatmaps


def is_external(split: str) -> bool:
    return split.startswith(EXTERNAL_PREFIX)


def check_name(name: str, flag: str = "--name") -> str:
    """An external set's name as given: short and plain, so ``external:NAME`` fits a row and a file name."""
    if not _NAME.fullmatch(name):
        raise SearchError(f"`{flag}` must be {_NAME_RULE}, but got {name!r}.")
    return name


def external_name(path: str | Path, name: str | None, flag: str = "--name") -> str:
    """``name``, checked, or else the external folder's own name (which must follow the same rule)."""
    if name is not None:
        return check_name(name, flag)
    folder = Path(path).resolve().name
    if not _NAME.fullmatch(folder):
        raise SearchError(
            f"`{flag}` must be given when the folder's name is not {_NAME_RULE}, but the folder is named {folder!r}."
        )
    return folder


def parse_external(text: str) -> tuple[str, str | None]:
    """``PATH[:NAME]`` (search.export's ``--external``): the path and the name after its last colon,
    unless the whole text is an existing path or the part after the colon holds a slash."""
    path, colon, name = text.rpartition(":")
    if colon and path and "/" not in name and not Path(text).exists():
        return path, check_name(name, "--external PATH:NAME")
    return text, None


def default_segmenter(given: str | Path | None) -> Path | None:
    """The lung segmenter for external images without masks: the one given (the study's or the
    export's), else the one packaged with cxrdata (``cxrdata/segmenter``)."""
    if given:
        return Path(given)
    from cxrdata.lungs import packaged_segmenter

    path = packaged_segmenter()
    return path if path.is_file() else None


@dataclass(frozen=True)
class StudyHashes:
    """The study's images by content: SHA-256 and the perceptual and difference hashes, aligned."""

    fingerprint: str
    sha256: tuple[str, ...]
    phash: tuple[str, ...]
    dhash: tuple[str, ...]

    @classmethod
    def of(cls, manifest: Manifest) -> StudyHashes:
        entries = manifest.entries
        return cls(
            manifest.fingerprint,
            tuple(e.sha256 for e in entries),
            tuple(e.phash for e in entries),
            tuple(e.dhash for e in entries),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "what": "the study's image hashes (SHA-256, perceptual, difference), for search.evaluate --external",
                "dataset_fingerprint": self.fingerprint,
                "images": len(self.sha256),
                "sha256": list(self.sha256),
                "phash": list(self.phash),
                "dhash": list(self.dhash),
            }
        )

    @classmethod
    def read(cls, path: Path) -> StudyHashes:
        """The file search.export wrote; one sentence when it is not one."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            hashes = cls(str(data["dataset_fingerprint"]), *(tuple(data[k]) for k in ("sha256", "phash", "dhash")))
        except (OSError, ValueError, KeyError, TypeError):
            hashes = None
        ok = hashes is not None and len({len(hashes.sha256), len(hashes.phash), len(hashes.dhash)}) == 1
        if hashes is None or not ok or not _all_hex(hashes):
            raise SearchError(
                f"'{path}' must hold the study's image hashes as search.export writes them, but it does not."
            )
        return hashes

    def copies(self, entries: Sequence[Entry]) -> tuple[np.ndarray, np.ndarray]:
        """Per entry: an exact copy of a study image (same SHA-256), and a near copy (perceptual and
        difference hash both within cxrdata's duplicate bits of one study image) that is not exact."""
        study = set(self.sha256)
        exact = np.array([e.sha256 in study for e in entries], dtype=bool)
        near = np.zeros(len(entries), dtype=bool)
        if not entries or not self.sha256:
            return exact, near
        study_p, study_d = _ints(self.phash), _ints(self.dhash)
        ext_p, ext_d = _ints([e.phash for e in entries]), _ints([e.dhash for e in entries])
        chunk = max(1, 4_000_000 // len(study_p))  # bounded memory whatever the study's size
        for start in range(0, len(entries), chunk):
            stop = start + chunk
            close_p = np.bitwise_count(ext_p[start:stop, None] ^ study_p[None, :]) <= NEAR_MAX_BITS
            close_d = np.bitwise_count(ext_d[start:stop, None] ^ study_d[None, :]) <= NEAR_MAX_BITS
            near[start:stop] = (close_p & close_d).any(axis=1)
        return exact, near & ~exact


def _ints(hashes: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def _all_hex(hashes: StudyHashes) -> bool:
    return all(isinstance(h, str) and _HEX64.fullmatch(h) for h in hashes.sha256) and all(
        isinstance(h, str) and _HEX16.fullmatch(h) for h in hashes.phash + hashes.dhash
    )


@dataclass(frozen=True)
class ExternalSet:
    """An external dataset, scanned, with what the model can be measured on and what was left out."""

    name: str
    root: Path
    fingerprint: str  # of the dataset as scanned, before anything was left out
    manifest: Manifest  # the usable entries only: classes the model knows, no copy of a study image
    labels: np.ndarray  # the model's label of each usable entry
    class_names: tuple[str, ...]
    unknown_classes: dict[str, int]  # images of classes the model does not know, per class
    unknown_folders: tuple[str, ...]  # folders that name no class (cxrdata does not read them)
    unusable_files: int  # image files cxrdata could not use (cxrdata.inspect lists them)
    unusable_masks: int  # masks cxrdata could not use (empty, unreadable): their images are kept, without a mask
    exact_copies: int | None  # None: the duplicate check could not be done
    near_copies: int | None
    duplicate_note: str | None = None  # why the check could not be done

    @property
    def split(self) -> str:
        return f"{EXTERNAL_PREFIX}{self.name}"


def _model_classes(scheme: Scheme) -> str:
    return ", ".join(
        name if members == (name,) else f"{name} ({', '.join(members)})" for name, members in scheme.groups
    )


def prepare_external(
    path: str | Path, name: str, scheme: Scheme, hashes: StudyHashes | None, *, no_hashes: str | None = None
) -> ExternalSet:
    """Scan ``path`` and keep the images the model can be measured on; one sentence when there are none.

    ``hashes``: the study's images, whose copies are left out; without them ``no_hashes`` says why.
    """
    manifest = scan(check_path(path))
    counts = manifest.counts()
    unknown = {c: n for c, n in counts.items() if scheme.label_of(c) is None}
    if len(unknown) == len(counts):
        found = [f"{c} ({n} images)" for c, n in counts.items()] + [
            f"'{f}' (no class)" for f in manifest.unknown_folders
        ]
        raise SearchError(
            f"The external dataset '{manifest.root}' must hold a class the model knows ({_model_classes(scheme)}), "
            f"but it holds {', '.join(found) or 'no image'}."
        )
    entries = [e for e in manifest.entries if scheme.label_of(e.label) is not None]
    exact_n: int | None = None
    near_n: int | None = None
    if hashes is not None:
        exact, near = hashes.copies(entries)
        exact_n, near_n = int(exact.sum()), int(near.sum())
        entries = [e for e, copy in zip(entries, exact | near, strict=True) if not copy]
        if not entries:
            raise SearchError(
                f"The external dataset '{manifest.root}' must hold images the study never saw, but all "
                f"{exact_n + near_n} of its images of the model's classes copy the study's ({exact_n} exact, "
                f"{near_n} near copies)."
            )
    labels = np.array([scheme.label_of(e.label) for e in entries], dtype=np.int64)
    return ExternalSet(
        name=name,
        root=manifest.root,
        fingerprint=manifest.fingerprint,
        manifest=replace(manifest, entries=tuple(entries)),
        labels=labels,
        class_names=scheme.class_names,
        unknown_classes=unknown,
        unknown_folders=tuple(manifest.unknown_folders),
        unusable_files=sum(not x.reason.startswith("mask ") for x in manifest.excluded),
        unusable_masks=sum(x.reason.startswith("mask ") for x in manifest.excluded),
        exact_copies=exact_n,
        near_copies=near_n,
        duplicate_note=None if hashes is not None else (no_hashes or "the study's image hashes are not at hand"),
    )


# Figures that mean nothing on a set of one class, per the class it holds: with only COVID images
# no X-ray can be a false positive; with no COVID image no case can be missed.
_NO_NEGATIVES = ("covid_specificity", "covid_ppv", "covid_npv", "covid_auc", "roc_auc", "accuracy", "balanced_accuracy")
_NO_POSITIVES = ("covid_sensitivity", "covid_ppv", "covid_npv", "covid_auc", "roc_auc", "accuracy", "balanced_accuracy")


@dataclass(frozen=True)
class ExternalResult:
    """A model's figures on one external set."""

    set: ExternalSet
    metrics: TrialMetrics
    focus: LungFocus | None
    focus_source: str | None  # "dataset", "segmenter" or "mixed"
    threshold_from: str  # where the COVID threshold came from, in words

    @property
    def present(self) -> list[str]:
        """The model's classes that have images in the set, in output order."""
        return [c for c, row in zip(self.set.class_names, self.metrics.confusion, strict=True) if sum(row) > 0]

    @property
    def one_class(self) -> str | None:
        present = self.present
        return present[0] if len(present) == 1 else None

    @property
    def undefined(self) -> tuple[str, ...]:
        """The figures of one split that this set cannot give (and are shown as n/a, never as numbers)."""
        present = self.present
        if present == [self.set.class_names[COVID_LABEL]]:
            return _NO_NEGATIVES
        if self.set.class_names[COVID_LABEL] not in present:
            return _NO_POSITIVES if len(present) == 1 else ("covid_sensitivity", "covid_ppv", "covid_npv", "covid_auc")
        return ()

    @property
    def note(self) -> str | None:
        one = self.one_class
        if one == self.set.class_names[COVID_LABEL]:
            return f"one class only ({one}): specificity, AUC and accuracy are undefined; COVID sensitivity alone"
        if one is not None:
            return f"one class only ({one}): sensitivity, AUC and accuracy are undefined; COVID specificity alone"
        if "covid_sensitivity" in self.undefined:
            return "no COVID image: COVID sensitivity and AUC are undefined"
        return None

    def figures(self) -> dict[str, Any]:
        """The split's figures as the model card writes them, with the undefined ones as None."""
        from search.export._card import summary

        out = summary(self.metrics)
        for name in self.undefined:
            out[name] = None
        if "covid_specificity" in self.undefined:
            out["covid_specificity_ci"] = None
        if "covid_sensitivity" in self.undefined:
            out["covid_sensitivity_ci"] = None
        return out

    def summary(self) -> dict[str, Any]:
        """Everything about this measurement: what was measured on, what was left out, the figures."""
        s = self.set
        focus = self.focus
        return {
            "name": s.name,
            "split": s.split,
            "path": str(s.root.resolve()),
            "fingerprint": s.fingerprint,
            "n": self.metrics.n,
            "images": {c: int((s.labels == i).sum()) for i, c in enumerate(s.class_names)},
            "left_out": {
                "copies_of_study_images": None if s.exact_copies is None else s.exact_copies + (s.near_copies or 0),
                "exact_copies": s.exact_copies,
                "near_copies": s.near_copies,
                "duplicate_check": "done" if s.duplicate_note is None else f"not done: {s.duplicate_note}",
                "classes_the_model_does_not_know": dict(s.unknown_classes),
                "folders_naming_no_class": list(s.unknown_folders),
                "unusable_files": s.unusable_files,
                "unusable_masks": s.unusable_masks,
            },
            "one_class": self.one_class,
            "note": self.note,
            "threshold_from": self.threshold_from,
            **self.figures(),
            "lung_focus": None
            if focus is None
            else {
                "energy": focus.energy,
                "energy_std": focus.energy_std,
                "ratio": focus.ratio,
                "pointing": focus.pointing,
                "n": focus.n,
                "blank": focus.blank,
                "source": self.focus_source,
            },
        }

    def lines(self) -> list[str]:
        """The result as a person reads it on a terminal."""
        s, m = self.set, self.metrics
        counts = {c: int((s.labels == i).sum()) for i, c in enumerate(s.class_names)}
        per_class = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
        out = [f"External set '{s.name}' ({s.root}, fingerprint {s.fingerprint}): {m.n} images ({per_class})"]
        out.append(f"  left out: {left_out_text(self.summary()['left_out'])}")
        if self.note:
            out.append(f"  {self.note}")
        op, undefined = m.operating, self.undefined
        if op is not None:
            sens = _pct(None if "covid_sensitivity" in undefined else op.sensitivity, op.sensitivity_ci)
            spec = _pct(None if "covid_specificity" in undefined else op.specificity, op.specificity_ci)
            out.append(
                f"  at the COVID threshold {op.threshold:.4f} ({self.threshold_from}): "
                f"COVID sensitivity {sens}, specificity {spec}"
            )
        else:
            out.append(f"  decided by the likeliest class ({self.threshold_from})")
        figures = self.figures()
        shown = ", ".join(
            f"{label} {_f(figures[key])}"
            for key, label in (
                ("covid_auc", "COVID AUC"),
                ("accuracy", "accuracy (argmax)"),
                ("roc_auc", "AUC (macro)"),
            )
        )
        out.append(f"  {shown}")
        out.append(f"  {focus_text(self.summary()['lung_focus'])}")
        return out


def _f(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def _pct(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.3f}" + ("" if ci is None else f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]")


def left_out_text(left: dict[str, Any]) -> str:
    """What an external measurement left out, in words (the card's ``left_out``)."""
    parts = []
    if left.get("copies_of_study_images") is None:
        why = str(left.get("duplicate_check") or "not done").removeprefix("not done: ")
        parts.append(f"copies of the study's images: the check could not be done ({why})")
    else:
        parts.append(
            f"{left['copies_of_study_images']} copies of the study's images ({left.get('exact_copies')} exact, "
            f"{left.get('near_copies')} near)"
        )
    parts += [
        f"{n} {c} (a class the model does not know)"
        for c, n in (left.get("classes_the_model_does_not_know") or {}).items()
    ]
    if left.get("folders_naming_no_class"):
        parts.append(
            "folders naming no class, not read: " + ", ".join(f"'{f}'" for f in left["folders_naming_no_class"])
        )
    if left.get("unusable_files"):
        parts.append(f"{left['unusable_files']} unusable files (python -m cxrdata.inspect lists them)")
    if left.get("unusable_masks"):
        parts.append(f"{left['unusable_masks']} unusable lung masks (their images are kept, without a mask)")
    return "; ".join(parts)


def focus_text(focus: dict[str, Any] | None) -> str:
    if focus is None:
        return "lung focus: not measured (no image with a lung mask, and no segmenter)"
    if focus.get("energy") is None:
        return f"lung focus: no positive Grad-CAM evidence on the {focus.get('n')} images with lung masks"
    ratio = focus.get("ratio")
    return (
        f"lung focus {focus['energy']:.3f}"
        + ("" if ratio is None else f" (/ lung area {ratio:.2f})")
        + f" on {focus.get('n')} images with {focus.get('source')} lung masks"
    )


def measure_external(
    model: Any,
    config: TrialConfig,
    external: ExternalSet,
    *,
    threshold: float | None,
    target: OperatingTarget | None,
    threshold_from: str,
    heatmaps: Callable[[np.ndarray], np.ndarray],
    segmenter: Path | None = None,
    cache_dir: Path | None = None,
) -> ExternalResult:
    """The model's figures on ``external``, seen as in its trial (``config``'s size, crop and region).

    ``threshold`` is the COVID threshold chosen on validation (None: the likeliest class decides;
    a threshold is never chosen here). ``heatmaps`` gives the COVID Grad-CAM of model inputs.
    """
    from search._trial import TrialData, focus_of
    from search.evaluate import predict
    from search.metrics import compute_metrics

    if segmenter is not None:
        from cxrdata.lungs import load_segmenter

        load_segmenter(segmenter, flag="the lung segmenter")  # one sentence for a file that is not one
    data = TrialData(external.manifest, cache_dir=cache_dir, lung_model=segmenter)
    _check_region(data, config, external)
    arrays = data.inputs(config)
    usable = np.flatnonzero(arrays.valid)
    if len(usable) == 0:
        raise SearchError(f"The external dataset '{external.root}' must hold images that decode, but none does now.")
    proba = predict(model, arrays, usable, external.labels, config.batch_size)
    with warnings.catch_warnings():  # one class: scikit-learn warns of absent classes; `undefined` says so instead
        warnings.filterwarnings("ignore", category=UserWarning, module=r"sklearn\.")
        metrics = compute_metrics(
            external.labels[usable],
            proba,
            external.class_names,
            split=external.split,
            target=target if threshold is not None else None,
            threshold=threshold,
        )
    # Lung focus as on validation, in the original image's coordinates, but on every usable image
    # with a lung mask (up to EXTERNAL_FOCUS_IMAGES): an external set is measured once, and on
    # human-drawn masks its focus is the figure a team trusts most.
    _, available, _ = data.lung_masks(config.image_size, config.crop)
    chosen = usable[available[usable]][:EXTERNAL_FOCUS_IMAGES]
    focus, source = None, None
    if len(chosen):
        images = np.asarray(arrays.images[chosen], dtype=np.float32)
        focus, source, _ = focus_of(data, config, chosen, heatmaps(images))
    return ExternalResult(external, metrics, focus, source, threshold_from)


def _check_region(data: Any, config: TrialConfig, external: ExternalSet) -> None:
    """A lung region needs every image's lungs: an image without would be seen whole, unlike in the trial."""
    if config.input_region == "full":
        return
    _, available, _ = data.lung_masks(config.image_size, config.crop)
    valid = data.arrays(config.image_size, config.crop).valid
    missing = int((~available & valid).sum())
    if missing:
        raise SearchError(
            f"A model with `input_region={config.input_region}` must see the lungs of every external image, but "
            f"{missing} of the {int(valid.sum())} images of '{external.root}' have no lung mask and no lung "
            "segmenter is at hand (the study's --lung-model, the export's, or cxrdata's packaged one)."
        )
