"""``python -m search.predict --model DIR IMAGE...``: class probabilities for new images.

Prints one JSON line per image, in the order given: the probabilities, the COVID probability
and the decision under the model card's rule (the COVID threshold chosen on validation for
the study's operating target). Ensembles' Grad-CAM is their members' weighted mean heatmap.
A file that is not a readable image gets a line with the reason and does not stop the others.
Models are loaded in Keras' safe mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrdata import ImageDecodeError, decode_image, prepare_image
from search._errors import SearchError

__all__ = ["Predictor", "main"]


class Predictor:
    """An exported model folder, loaded once."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        card_path = folder / "model_card.json"
        if not card_path.is_file():
            raise SearchError(
                f"`--model` must be a folder written by search.export, but '{folder}' has no model_card.json."
            )
        self.card: dict[str, Any] = json.loads(card_path.read_text())
        import keras

        self.model = keras.models.load_model(folder / self.card["files"]["keras"], safe_mode=True)
        self.classes: list[str] = self.card["classes"]
        self.size = int(self.card["input"]["size"])
        self.crop = float(self.card["input"]["crop_fraction_per_side"])
        self.threshold: float | None = self.card["decision"]["threshold"]

    def prepare(self, path: Path) -> np.ndarray:
        return prepare_image(decode_image(path), self.size, self.crop)

    def decide(self, proba: np.ndarray) -> tuple[str, bool]:
        covid = float(proba[self.card["covid_class_index"]])
        if self.threshold is None:
            label = self.classes[int(np.argmax(proba))]
            return label, label == self.classes[self.card["covid_class_index"]]
        is_covid = covid >= self.threshold
        others = [i for i in range(len(self.classes)) if i != self.card["covid_class_index"]]
        label = self.classes[0] if is_covid else self.classes[max(others, key=lambda i: proba[i])]
        return label, is_covid

    def predict(self, paths: Sequence[Path], gradcam_dir: Path | None = None) -> Iterator[dict[str, Any]]:
        ready: list[tuple[int, np.ndarray]] = []
        lines: list[dict[str, Any]] = []
        for index, path in enumerate(paths):
            lines.append({"path": str(path)})
            try:
                ready.append((index, self.prepare(path)))
            except (ImageDecodeError, OSError) as exc:
                lines[index]["error"] = (
                    f"not a readable image: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
                )
        if ready:
            images = np.stack([image for _, image in ready]).astype(np.float32)
            proba = self.model.predict(images, verbose=0)
            heatmaps = self._gradcam(images, gradcam_dir)
            for k, (index, _) in enumerate(ready):
                label, is_covid = self.decide(proba[k])
                lines[index].update(
                    {
                        "probabilities": {c: round(float(p), 6) for c, p in zip(self.classes, proba[k], strict=True)},
                        "covid_probability": round(float(proba[k][self.card["covid_class_index"]]), 6),
                        "prediction": label,
                        "covid": is_covid,
                    }
                )
                if heatmaps is not None and gradcam_dir is not None:
                    lines[index]["gradcam"] = self._save_overlay(images[k], heatmaps[k], paths[index], gradcam_dir)
        yield from lines

    def _gradcam(self, images: np.ndarray, folder: Path | None) -> np.ndarray | None:
        if folder is None:
            return None
        covid = self.card["covid_class_index"]
        if self.card.get("kind") == "ensemble":
            from search.ensemble import ensemble_gradcam

            members = [(str(layer), float(weight)) for layer, weight in self.card["gradcam"]["members"]]
            return ensemble_gradcam(self.model, members, images, covid)
        from search.gradcam import gradcam

        return gradcam(self.model, self.card["gradcam_layer"], images, covid)

    def _save_overlay(self, image: np.ndarray, heatmap: np.ndarray, source: Path, folder: Path) -> str:
        from PIL import Image

        from search.gradcam import overlay

        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{source.stem}.gradcam.png"
        Image.fromarray(overlay(image, heatmap)).save(target)
        return str(target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.predict", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a folder written by search.export")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--gradcam", type=Path, help="also write a Grad-CAM overlay PNG per image into this folder")
    args = parser.parse_args(argv)
    try:
        predictor = Predictor(args.model)
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in predictor.predict(args.images, args.gradcam):
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
