"""Where a backbone's ImageNet weights come from: Keras' download, a local folder, or nowhere."""

from __future__ import annotations

import re
from pathlib import Path

from search._errors import SearchError
from search.backbones._registry import BackboneSpec

__all__ = ["IMAGENET", "NONE", "check_weights", "keras_cache_dir", "missing_download_message", "resolve_weights"]

IMAGENET = "imagenet"
NONE = "none"


def keras_cache_dir() -> Path:
    return Path.home() / ".keras" / "models"


def check_weights(value: str) -> str:
    """``imagenet``, ``none`` or an existing folder; anything else fails with the rule."""
    if value in (IMAGENET, NONE):
        return value
    folder = Path(value)
    if not folder.is_dir():
        raise SearchError(
            f"`--weights` must be 'imagenet', 'none' or an existing folder of Keras weight files, but got {value!r}."
        )
    return str(folder.resolve())


def _size_of(name: str) -> int | None:
    match = re.search(r"_(\d{2,3})_(?:tf_)?no_top\.h5$", name)
    return int(match.group(1)) if match else None


def _pick(candidates: list[Path], image_size: int) -> Path:
    """Prefer the file trained at the size closest to the input (convolutions accept any size)."""
    return min(candidates, key=lambda p: abs((_size_of(p.name) or image_size) - image_size))


def resolve_weights(spec: BackboneSpec, weights: str, image_size: int) -> str | None:
    """What to pass as Keras' ``weights=``: ``None``, ``"imagenet"`` or a file path.

    With a folder, the file must carry the name Keras gives it; a missing file fails with one
    sentence naming it and the two ways out.
    """
    weights = check_weights(weights)
    if weights == NONE:
        return None
    if weights == IMAGENET:
        return IMAGENET
    folder = Path(weights)
    found = [folder / name for name in spec.weight_files if (folder / name).is_file()]
    if not found:
        raise SearchError(
            f"ImageNet weights for {spec.name} need the file '{spec.weight_files[0]}' in '{folder}', but it is not "
            f"there: copy that file (from a machine with internet, ~/.keras/models) into the folder, or use "
            f"--weights none for random initialisation."
        )
    return str(_pick(found, image_size))


def missing_download_message(spec: BackboneSpec, error: Exception) -> str:
    """The sentence for a failed ``weights='imagenet'`` download."""
    return (
        f"ImageNet weights for {spec.name} could not be downloaded ({type(error).__name__}): the file "
        f"'{spec.weight_files[0]}' is not in {keras_cache_dir()} and this machine cannot fetch it; put it in a "
        f"folder and pass --weights FOLDER, or use --weights none for random initialisation."
    )
