"""The exported files (Keras, SavedModel, TFLite) and the reload check that must pass before export succeeds."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from search._errors import SearchError

__all__ = [
    "FORMATS",
    "KERAS_TOLERANCE",
    "TFLITE_TOLERANCE",
    "check_formats",
    "check_out",
    "staged",
    "tflite_predict",
    "verify",
    "write",
]

FORMATS = ("keras", "savedmodel", "tflite")
KERAS_TOLERANCE = 1e-5  # the same graph and weights reloaded: only float noise
TFLITE_TOLERANCE = 1e-3  # TFLite fuses and reorders float ops; probabilities still agree to 3 decimals


def check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SearchError(f"`--out` must be a folder, but '{out}' is a file.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SearchError(
            f"`--out` must be a new or empty folder (nothing is overwritten), but '{out}' holds files; use --force."
        )


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new, hidden folder in ``parent``; made with ``os.mkdir`` rather than ``tempfile.mkdtemp``
    so that it gets the user's usual permissions (mkdtemp's 0700 would stay on the published export)."""
    while True:
        candidate = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate


def _publish(stage: Path, out: Path, force: bool) -> None:
    """Rename the finished ``stage`` to ``out``; a previous ``out`` is moved aside first and deleted
    only once the new folder is in place, so it is never lost before its replacement is complete."""
    check_out(out, force)  # again: something may have been written there while the export ran
    if not out.exists():
        stage.rename(out)
        return
    aside = _fresh_dir(out.parent, f".{out.name}.old-")
    out.rename(aside / out.name)
    try:
        stage.rename(out)
    except BaseException:
        (aside / out.name).rename(out)  # put the previous export back
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def staged(out: Path, force: bool) -> Iterator[Path]:
    """A temporary folder beside ``out`` to write the export into; it becomes ``out`` when the block ends.

    Beside ``out`` (same parent, so the same file system) the final step is a rename: a crash
    before it leaves ``out`` as it was (absent, or the previous export) and removes the
    temporary folder; with ``force`` the result holds only the new files.
    """
    # The real path: a link is followed to the folder it names, and "." or "x/.." get a name to rename to.
    out = Path(os.path.realpath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = _fresh_dir(out.parent, f".{out.name}.tmp-")
    try:
        yield stage
        _publish(stage, out, force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    from cxrdata import did_you_mean

    for name in formats:
        if name not in FORMATS:
            raise SearchError(
                f"`--formats` must be among {', '.join(FORMATS)}, but got {name!r}.{did_you_mean(name, FORMATS)}"
            )
    if "keras" not in formats:
        raise SearchError(
            f"`--formats` must include keras (the other formats are made from it), but got {list(formats)}."
        )
    return tuple(formats)


def write(model: Any, out: Path, formats: Sequence[str]) -> dict[str, str]:
    files = {"keras": "model.keras"}
    model.save(out / "model.keras")
    if "savedmodel" in formats:
        model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
        files["savedmodel"] = "saved_model/"
    if "tflite" in formats:
        import tensorflow as tf

        if "savedmodel" in formats:
            tflite = tf.lite.TFLiteConverter.from_saved_model(str(out / "saved_model")).convert()
        else:  # the converter reads a SavedModel: make one outside the export, where it cannot be left behind
            with tempfile.TemporaryDirectory(prefix="cxr-export-") as scratch:
                model.export(scratch, format="tf_saved_model", verbose=False)
                tflite = tf.lite.TFLiteConverter.from_saved_model(scratch).convert()
        (out / "model.tflite").write_bytes(tflite)
        files["tflite"] = "model.tflite"
    return files


def tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """The TFLite file's predictions, run by LiteRT (the interpreter that replaces ``tf.lite.Interpreter``)."""
    from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images.astype(np.float32))
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(out["index"]))


def verify(out: Path, expected: np.ndarray, images: np.ndarray, files: dict[str, str]) -> dict[str, float]:
    """Reload every written file and compare its predictions; fail with the worst difference."""
    import keras
    import tensorflow as tf

    diffs = {
        "keras": float(
            np.abs(
                keras.models.load_model(out / files["keras"], safe_mode=True).predict(images, verbose=0) - expected
            ).max()
        )
    }
    if "savedmodel" in files:
        loaded = tf.saved_model.load(str(out / "saved_model"))  # keep a reference: it owns the variables
        served = loaded.serve(tf.constant(images, tf.float32))
        diffs["savedmodel"] = float(np.abs(np.asarray(served) - expected).max())
    if "tflite" in files:
        diffs["tflite"] = float(np.abs(tflite_predict(out / files["tflite"], images) - expected).max())
    for name, diff in diffs.items():
        limit = TFLITE_TOLERANCE if name == "tflite" else KERAS_TOLERANCE
        if not diff <= limit:
            raise SearchError(
                f"The reloaded {name} model must predict within {limit} of the trained model, "
                f"but differs by {diff:.2e}."
            )
    return diffs
