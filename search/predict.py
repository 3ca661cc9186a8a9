"""``python -m search.predict --model DIR IMAGE...``: class probabilities for new images.

Prints one JSON line per image, in the order given: the probabilities, the COVID probability
and the decision under the model card's rule (the COVID threshold chosen on validation for
the study's operating target). Ensembles' Grad-CAM is their members' weighted mean heatmap.
A file that is not a readable image gets a line with the reason and does not stop the others.
Images are read ``--batch-size`` at a time, so memory does not grow with the number of files.
With ``--gradcam DIR`` each line also gives the path of its image's overlay: the file name's
stem, with -2, -3... when an earlier input had the same file name. Models are loaded in
Keras' safe mode, after every field of the card they need has been checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from cxrdata import REGION_MARGIN, REGIONS, ImageDecodeError, apply_region, decode_image, prepare_image, to_original
from search._errors import SearchError
from search._settings import check_settings

__all__ = ["BATCH_SIZE", "Predictor", "main", "read_card"]

# Images decoded, predicted and explained at a time: memory stays flat however many files are given.
BATCH_SIZE = 32


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is not a number


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and _is_number(v[1])


# What predict reads from the card: (key, what it must be, the check).
_FIELDS: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("files.keras", "a file name", lambda v: isinstance(v, str) and v != ""),
    (
        "classes",
        "a list of at least two class names",
        lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v),
    ),
    ("covid_class_index", "a whole number", _is_int),
    ("input.size", "a whole number of pixels from 16 to 2048", lambda v: _is_int(v) and 16 <= v <= 2048),
    ("input.crop_fraction_per_side", "a number with 0 <= crop < 0.5", lambda v: _is_number(v) and 0 <= v < 0.5),
    (
        "decision.threshold",
        "null or a number with 0 < threshold < 1",
        lambda v: v is None or (_is_number(v) and 0 < v < 1),
    ),
)
_SINGLE_GRADCAM = ("gradcam_layer", "a layer name", lambda v: isinstance(v, str) and v != "")
_ENSEMBLE_GRADCAM = (
    "gradcam.members",
    "a list of [layer name, weight] pairs",
    lambda v: isinstance(v, list) and len(v) > 0 and all(_is_pair(m) for m in v),
)


def _shown(value: Any) -> str:
    text = json.dumps(value)  # as the card's author wrote it: null, true, "32"
    return text if len(text) <= 60 else text[:57] + "..."


def _field(card: dict[str, Any], key: str, what: str, path: Path) -> Any:
    """``card[key]`` for a dotted key; a SearchError naming the file, the key and what it must be otherwise."""
    value: Any = card
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(value, dict):
            parent = ".".join(parts[:depth])
            got = f"`{parent}` is {_shown(value)}, not an object"
            raise SearchError(f"The model card '{path}' must give `{key}` as {what}, but {got}.")
        if part not in value:
            raise SearchError(f"The model card '{path}' must give `{key}` as {what}, but it is missing.")
        value = value[part]
    return value


def _checked(card: dict[str, Any], key: str, what: str, check: Callable[[Any], bool], path: Path) -> Any:
    value = _field(card, key, what, path)
    if not check(value):
        raise SearchError(f"The model card '{path}' must give `{key}` as {what}, but got {_shown(value)}.")
    return value


def _parse_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SearchError(f"The model card '{path}' must be UTF-8 text, but byte {exc.start} is not.") from None
    except json.JSONDecodeError as exc:
        raise SearchError(
            f"The model card '{path}' must be JSON, but it is not ({exc.msg} at line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(card, dict):
        raise SearchError(f"The model card '{path}' must be a JSON object, but got {_shown(card)}.")
    return card


def read_card(folder: Path) -> dict[str, Any]:
    """The folder's model card, with every field predict reads checked; one sentence when it is not usable."""
    path = folder / "model_card.json"
    if not path.is_file():
        raise SearchError(
            f"`--model` must be a folder written by search.export, but '{folder}' has no model_card.json."
        )
    card = _parse_card(path)
    for key, what, check in _FIELDS:
        _checked(card, key, what, check, path)
    if not 0 <= card["covid_class_index"] < len(card["classes"]):
        raise SearchError(
            f"The model card '{path}' must give `covid_class_index` as an index into `classes` "
            f"(0 to {len(card['classes']) - 1}), but got {card['covid_class_index']}."
        )
    if "kind" in card:  # cards from before the ensembles have none: they are single models
        _checked(card, "kind", '"single" or "ensemble"', lambda v: v in ("single", "ensemble"), path)
    _checked(card, *(_ENSEMBLE_GRADCAM if card.get("kind") == "ensemble" else _SINGLE_GRADCAM), path)
    model = folder / card["files"]["keras"]
    if not (model.resolve().is_relative_to(folder.resolve()) and model.is_file()):
        raise SearchError(
            f"The model card '{path}' must give `files.keras` as a file in '{folder}', "
            f"but got {_shown(card['files']['keras'])}."
        )
    return card


def _overlay_name(source: Path, taken: set[str]) -> str:
    """``stem.gradcam.png``, or ``stem-2.gradcam.png``, ... when an earlier input of the run had that
    file name (a/img.png and b/img.png): every input keeps its own overlay, numbered in the order given."""
    name, n = f"{source.stem}.gradcam.png", 1
    while name.casefold() in taken:  # casefold: the file systems of macOS and Windows ignore case
        n += 1
        name = f"{source.stem}-{n}.gradcam.png"
    taken.add(name.casefold())
    return name


def _region(card: dict[str, Any], folder: Path) -> tuple[str, Any]:
    """The card's input region and, for a lung region, the segmenter shipped beside the model."""
    path = folder / "model_card.json"
    region = card["input"].get("region", "full")  # cards written before regions: the whole image
    if region not in REGIONS:
        raise SearchError(
            f"The model card '{path}' must give `input.region` as one of {', '.join(REGIONS)}, "
            f"but got {_shown(region)}."
        )
    if region == "full":
        return region, None
    name = card.get("files", {}).get("segmenter")
    if not isinstance(name, str) or Path(name).name != name or not (folder / name).is_file():
        raise SearchError(
            f"The model card '{path}' must give `files.segmenter` as a file in '{folder}' for input.region={region}, "
            f"but got {_shown(name)}."
        )
    from cxrdata import DatasetError
    from cxrdata.lungs import load_segmenter

    try:
        return region, load_segmenter(folder / name, flag="files.segmenter")
    except DatasetError as exc:  # predict answers in its own error type
        raise SearchError(str(exc)) from None


def _unreadable(exc: Exception) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return f"not a readable image: {reason}"


class Predictor:
    """An exported model folder, loaded once."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.card: dict[str, Any] = read_card(folder)
        import keras

        self.model = keras.models.load_model(folder / self.card["files"]["keras"], safe_mode=True)
        self.classes: list[str] = self.card["classes"]
        outputs = self.model.output_shape[-1]
        if outputs != len(self.classes):  # else every line would pair probabilities with the wrong names
            raise SearchError(
                f"The model card '{folder / 'model_card.json'}' must name one class per output of the model "
                f"({outputs}), but got {len(self.classes)} classes."
            )
        self.covid: int = self.card["covid_class_index"]
        self.size = int(self.card["input"]["size"])
        self.crop = float(self.card["input"]["crop_fraction_per_side"])
        self.threshold: float | None = self.card["decision"]["threshold"]
        self.region, self.segmenter = _region(self.card, folder)
        self.region_margin = float(self.card["input"].get("region_margin", REGION_MARGIN))

    def prepare(self, path: Path) -> np.ndarray:
        return prepare_image(decode_image(path), self.size, self.crop)

    def cut(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's inputs (float32) for prepared images, with the trial's input region applied,
        and each input's box in the prepared image."""
        if self.segmenter is None:
            n, size = len(images), images.shape[1]
            return images.astype(np.float32), np.tile(np.array([0, size, 0, size]), (n, 1))
        from cxrdata.lungs import segment

        masks = segment(self.segmenter, images)
        cut = apply_region(images, masks, np.ones(len(images), bool), self.region, self.region_margin)
        return cut.images.astype(np.float32), cut.boxes

    def decide(self, proba: np.ndarray) -> tuple[str, bool]:
        if self.threshold is None:
            label = self.classes[int(np.argmax(proba))]
            return label, label == self.classes[self.covid]
        is_covid = float(proba[self.covid]) >= self.threshold
        others = [i for i in range(len(self.classes)) if i != self.covid]
        label = self.classes[self.covid] if is_covid else self.classes[max(others, key=lambda i: proba[i])]
        return label, is_covid

    def predict(
        self, paths: Iterable[Path], gradcam_dir: Path | None = None, batch_size: int = BATCH_SIZE
    ) -> Iterator[dict[str, Any]]:
        """One line per path, in order, ``batch_size`` images at a time; with ``gradcam_dir``, each
        line names its own overlay under ``gradcam``."""
        if not _is_int(batch_size) or batch_size < 1:
            raise SearchError(f"`batch_size >= 1` must hold, but got {batch_size!r}.")
        taken: set[str] = set()  # overlay names of this run, so that no input overwrites another's
        queue = iter(paths)
        while batch := list(islice(queue, batch_size)):
            yield from self._batch(batch, gradcam_dir, taken)

    def _batch(self, paths: list[Path], gradcam_dir: Path | None, taken: set[str]) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [{"path": str(path)} for path in paths]
        ready: list[tuple[int, np.ndarray]] = []
        for index, path in enumerate(paths):
            try:
                ready.append((index, self.prepare(path)))
            except (ImageDecodeError, OSError) as exc:
                lines[index]["error"] = _unreadable(exc)
        if not ready:
            return lines
        originals = np.stack([image for _, image in ready])
        images, boxes = self.cut(originals)
        proba = self.model.predict(images, batch_size=len(images), verbose=0)
        heatmaps = self._gradcam(images, gradcam_dir)
        if heatmaps is not None:  # shown on the X-ray as given, whatever part the model saw
            heatmaps = to_original(heatmaps, boxes, originals.shape[1:3])
        for k, (index, _) in enumerate(ready):
            label, is_covid = self.decide(proba[k])
            lines[index].update(
                {
                    "probabilities": {c: round(float(p), 6) for c, p in zip(self.classes, proba[k], strict=True)},
                    "covid_probability": round(float(proba[k][self.covid]), 6),
                    "prediction": label,
                    "covid": is_covid,
                }
            )
            if heatmaps is not None and gradcam_dir is not None:
                name = _overlay_name(paths[index], taken)
                lines[index]["gradcam"] = self._save_overlay(originals[k], heatmaps[k], gradcam_dir / name)
        return lines

    def _gradcam(self, images: np.ndarray, folder: Path | None) -> np.ndarray | None:
        if folder is None:
            return None
        if self.card.get("kind") == "ensemble":
            from search.ensemble import ensemble_gradcam

            members = [(str(layer), float(weight)) for layer, weight in self.card["gradcam"]["members"]]
            return ensemble_gradcam(self.model, members, images, self.covid)
        from search.gradcam import gradcam

        return gradcam(self.model, self.card["gradcam_layer"], images, self.covid)

    def _save_overlay(self, image: np.ndarray, heatmap: np.ndarray, target: Path) -> str:
        from PIL import Image

        from search.gradcam import overlay

        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(overlay(image, heatmap)).save(target)
        return str(target)


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"`--batch-size >= 1` must hold, but got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()
    parser = argparse.ArgumentParser(prog="python -m search.predict", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a folder written by search.export")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--gradcam", type=Path, help="also write a Grad-CAM overlay PNG per image into this folder")
    parser.add_argument(
        "--batch-size", type=_batch_size, default=BATCH_SIZE, help=f"images read at a time (default {BATCH_SIZE})"
    )
    args = parser.parse_args(argv)
    try:
        predictor = Predictor(args.model)
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in predictor.predict(args.images, args.gradcam, args.batch_size):
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
