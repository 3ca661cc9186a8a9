"""Lung masks for datasets that come without them: a small U-Net trained on image/mask pairs.

    python -m cxrdata.lungs train --masks DIR --out lungs.keras [--size 128] [--base 16] [--epochs 40]
    python -m cxrdata.lungs dice --masks DIR --model lungs.keras

``DIR`` holds ``images/NAME.png`` and ``masks/NAME.png`` (255 = lung), as
``../shared/cxr/lung-masks`` does; an optional ``metadata.csv`` with ``image`` and
``patient_id`` columns keeps each patient on one side of the held-out split. ``train`` writes
the model and, beside it, ``lungs.json``: how it was trained and its held-out Dice.

A segmenter trained this way ships with the package (``packaged_segmenter()``, see
``cxrdata/segmenter/README.md``). TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrdata._decode import IMAGE_SUFFIXES, decode_image, decode_mask
from cxrdata._errors import DatasetError, ImageDecodeError

__all__ = [
    "MaskPairs",
    "check_segmenter_file",
    "dice",
    "load_pairs",
    "load_segmenter",
    "main",
    "packaged_segmenter",
    "segment",
    "segmenter_card",
    "train_segmenter",
]


def packaged_segmenter() -> Path:
    """The lung segmenter shipped with the package (a 128 px U-Net; ``cxrdata/segmenter/README.md``)."""
    return Path(__file__).resolve().parent / "segmenter" / "lungs.keras"


def segmenter_card(path: str | Path) -> dict[str, Any] | None:
    """What ``train`` wrote beside a segmenter (``NAME.json``: training and held-out Dice), if anything."""
    card = Path(path).with_suffix(".json")
    try:
        loaded = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


_SHAPE_RULE = "a lung segmenter with input (S, S, 1) and output (S, S, 1)"


def check_segmenter_file(path: str | Path, flag: str = "--lung-model") -> Path:
    """``path`` when it is an existing ``.keras`` file that is a Keras archive: the checks of
    :func:`load_segmenter` that need no TensorFlow."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".keras":
        raise DatasetError(f"`{flag}` must be an existing .keras file, but got '{path}'.")
    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise DatasetError(
            f"`{flag}` must be {_SHAPE_RULE} saved by Keras, but '{path}' is not a Keras model file."
        ) from None
    return path


def _shape(tensors: Any) -> str:
    return " and ".join(str(tuple(t.shape)[1:]) for t in tensors) or "nothing"


def load_segmenter(path: str | Path, flag: str = "--lung-model") -> Any:
    """The Keras model in ``path`` (loaded in safe mode), when it is a lung segmenter: one gray
    input ``(S, S, 1)`` and one mask output ``(S, S, 1)`` of the same size. Anything else is
    refused with one sentence naming the file and the rule."""
    path = check_segmenter_file(path, flag)
    import keras

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
        inputs, outputs = list(model.inputs), list(model.outputs)
    except Exception:  # Keras raises many types for a file it cannot rebuild
        raise DatasetError(
            f"`{flag}` must be {_SHAPE_RULE} saved by Keras, but '{path}' could not be loaded as a Keras model."
        ) from None
    shapes = [tuple(t.shape) for t in inputs + outputs]
    size = shapes[0][1] if shapes and len(shapes[0]) > 1 else None
    if (
        len(inputs) != 1
        or len(outputs) != 1
        or not isinstance(size, int)
        or any(s[1:] != (size, size, 1) for s in shapes)
    ):
        raise DatasetError(
            f"`{flag}` must be {_SHAPE_RULE}, but '{path}' takes {_shape(inputs)} and gives {_shape(outputs)}."
        )
    return model


@dataclass
class MaskPairs:
    """Gray images ``(N, S, S, 1)`` uint8, masks ``(N, S, S, 1)`` uint8 in {0, 1}, a patient per pair."""

    images: np.ndarray
    masks: np.ndarray
    patients: list[str]
    names: list[str]
    skipped: dict[str, str]  # file name -> why it is not a usable pair


def _patients(folder: Path, column: str = "patient_id") -> dict[str, str]:
    meta = folder / "metadata.csv"
    if not meta.is_file():
        return {}
    with meta.open(newline="", encoding="utf-8") as handle:
        return {
            Path(row["image"]).name: (row.get(column) or "").strip()
            for row in csv.DictReader(handle)
            if row.get("image")
        }


def load_pairs(folder: str | Path, size: int) -> MaskPairs:
    """Read every image that has a mask of the same name, resized to ``size`` square."""
    root = Path(folder)
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DatasetError(f"The mask folder must hold images/ and masks/ sub-folders, but '{root}' does not.")
    patients = _patients(root)
    imgs, msks, pats, names = [], [], [], []
    skipped: dict[str, str] = {}
    for path in sorted(images_dir.iterdir()):
        mask_path = masks_dir / path.name
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not mask_path.is_file():
            skipped[path.name] = "no mask of the same name"
            continue
        try:
            gray = Image.fromarray(decode_image(path)).convert("L").resize((size, size), Image.Resampling.BILINEAR)
            lung_full = decode_mask(mask_path)
        except (ImageDecodeError, OSError) as exc:
            skipped[path.name] = str(exc)  # a broken pair is skipped: the rest still trains
            continue
        if not lung_full.any():
            # Unannotated (often lateral) views: an empty mask would teach "no lungs here".
            skipped[path.name] = "empty mask"
            continue
        lung = Image.fromarray(lung_full.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
        imgs.append(np.asarray(gray))
        msks.append((np.asarray(lung) > 127).astype(np.uint8))
        pats.append(patients.get(path.name) or path.stem)
        names.append(path.name)
    if len(imgs) < 10:
        raise DatasetError(
            f"Training a lung segmenter needs at least 10 image/mask pairs, but '{root}' has {len(imgs)}."
        )
    return MaskPairs(np.stack(imgs)[..., None], np.stack(msks)[..., None], pats, names, skipped)


def held_out(pairs: MaskPairs, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices, whole patients on one side."""
    patients = sorted(set(pairs.patients))
    rng = np.random.default_rng(seed)
    chosen = set(rng.permutation(patients)[: max(1, round(fraction * len(patients)))].tolist())
    test = np.array([i for i, p in enumerate(pairs.patients) if p in chosen])
    train = np.array([i for i, p in enumerate(pairs.patients) if p not in chosen])
    return train, test


def _unet(size: int, base: int = 16) -> Any:
    import keras

    inputs = keras.Input((size, size, 1), name="gray")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    skips = []
    for depth in range(4):
        x = keras.layers.Conv2D(base * 2**depth, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(base * 2**depth, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(base * 16, 3, padding="same", activation="relu")(x)
    for depth in reversed(range(4)):
        x = keras.layers.Conv2DTranspose(base * 2**depth, 2, strides=2, padding="same")(x)
        x = keras.layers.Concatenate()([x, skips[depth]])
        x = keras.layers.Conv2D(base * 2**depth, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(base * 2**depth, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="lung")(x)
    return keras.Model(inputs, outputs, name="lung_unet")


def _dice_loss(y_true: Any, y_pred: Any) -> Any:
    import keras

    inter = keras.ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = keras.ops.sum(y_true, axis=(1, 2, 3)) + keras.ops.sum(y_pred, axis=(1, 2, 3))
    dice_loss = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
    return dice_loss + keras.ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))


def dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice per image of two boolean mask stacks (1.0 when both are empty)."""
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    axes = tuple(range(1, p.ndim))
    inter, total = (p & t).sum(axis=axes), p.sum(axis=axes) + t.sum(axis=axes)
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))


def train_segmenter(
    pairs: MaskPairs, train: np.ndarray, *, epochs: int = 40, batch_size: int = 16, seed: int = 0, base: int = 16
) -> Any:
    """Train the U-Net (``base`` filters in its first block) on ``train`` pairs with flips and
    mild affine augmentation."""
    import keras
    import tensorflow as tf

    from cxrdata._pipeline import random_affine

    keras.utils.set_random_seed(seed)
    size = pairs.images.shape[1]
    model = _unet(size, base)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_dice_loss)
    stacked = np.concatenate([pairs.images[train], pairs.masks[train] * 255], axis=-1).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(stacked).shuffle(len(stacked), seed=seed).batch(batch_size)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def augment(batch: tf.Tensor, batch_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        moved = random_affine(batch, 0.6, batch_seed)  # one draw moves image and mask together
        return moved[..., :1], tf.cast(moved[..., 1:] > 127.5, tf.float32)

    data = tf.data.Dataset.zip(data, seeds).map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
    model.fit(data, epochs=epochs, verbose=0)
    # Uncompiled, so a saved file holds the weights that segment and no optimizer state (a third the size).
    trained = _unet(size, base)
    trained.set_weights(model.get_weights())
    return trained


def segment(model: Any, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Lung masks ``(N, H, W)`` bool for RGB or gray uint8 images ``(N, H, W, C)`` of any size."""
    import tensorflow as tf

    size = int(model.input.shape[1])
    gray = tf.image.rgb_to_grayscale(images) if images.shape[-1] == 3 else tf.convert_to_tensor(images)
    small = tf.image.resize(tf.cast(gray, tf.float32), (size, size), method="bilinear")
    prob = model.predict(small, batch_size=batch_size, verbose=0)
    back = tf.image.resize(prob, images.shape[1:3], method="bilinear")[..., 0]
    return (
        np.stack([_clean(m) for m in np.asarray(back.numpy() > 0.5)])
        if len(images)
        else np.zeros(images.shape[:3], bool)
    )


def _clean(mask: np.ndarray) -> np.ndarray:
    """Keep the two largest regions (the lungs) and fill their holes: stray blobs are noise."""
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count > 2:
        sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
        keep = 1 + np.argsort(sizes)[-2:]
        mask = np.isin(labels, keep)
    return np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cxrdata.lungs", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train_p = sub.add_parser("train", help="train a segmenter and report its held-out Dice")
    train_p.add_argument("--masks", required=True, help="folder with images/ and masks/")
    train_p.add_argument("--out", required=True, type=Path, help="where to write the .keras model")
    train_p.add_argument("--size", type=int, default=128)
    train_p.add_argument("--base", type=int, default=16, help="filters of the first U-Net block (default: 16)")
    train_p.add_argument("--epochs", type=int, default=40)
    train_p.add_argument("--seed", type=int, default=0)
    dice_p = sub.add_parser("dice", help="Dice of a trained segmenter on its held-out patients")
    dice_p.add_argument("--masks", required=True)
    dice_p.add_argument("--model", required=True, type=Path)
    dice_p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            if args.out.suffix != ".keras":
                raise DatasetError(f"`--out` must end in .keras, but got '{args.out}'.")
            pairs = load_pairs(args.masks, args.size)
            train, test = held_out(pairs, seed=args.seed)
            started = time.perf_counter()
            model = train_segmenter(pairs, train, epochs=args.epochs, seed=args.seed, base=args.base)
            train_s = time.perf_counter() - started
            args.out.parent.mkdir(parents=True, exist_ok=True)
            model.save(args.out)
        else:
            model = load_segmenter(args.model, flag="--model")
            pairs = load_pairs(args.masks, int(model.input.shape[1]))
            _, test = held_out(pairs, seed=args.seed)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if pairs.skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in Counter(pairs.skipped.values()).most_common())
        print(f"skipped {len(pairs.skipped)} pair(s): {reasons}")
    scores = dice(segment(model, pairs.images[test]), pairs.masks[test][..., 0])
    patients = len(set(pairs.patients[i] for i in test))
    print(f"held-out Dice over {len(test)} images of {patients} patients: "
          f"mean {scores.mean():.3f}, median {np.median(scores):.3f}, min {scores.min():.3f}")  # fmt: skip
    if args.command == "train":
        licences = _patients(Path(args.masks), "license")
        card = {
            "model": args.out.name,
            "input": [args.size, args.size, 1],
            "base": args.base,
            "epochs": args.epochs,
            "seed": args.seed,
            "params": int(model.count_params()),
            "train_seconds": round(train_s),
            "command": (
                f"python -m cxrdata.lungs train --masks {args.masks} --out {args.out} --size {args.size} "
                f"--base {args.base} --epochs {args.epochs} --seed {args.seed}"
            ),
            "pairs": {"usable": len(pairs.names), "skipped": dict(Counter(pairs.skipped.values()))},
            "train": {"images": len(train), "patients": len(set(pairs.patients[i] for i in train))},
            "held_out": {
                "images": len(test),
                "patients": patients,
                "dice_mean": round(float(scores.mean()), 4),
                "dice_median": round(float(np.median(scores)), 4),
                "dice_min": round(float(scores.min()), 4),
            },
            "train_licences": dict(Counter(licences.get(pairs.names[i]) or "not stated" for i in train).most_common()),
        }
        args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
