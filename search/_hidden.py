"""What a model can tell with the lungs hidden: a check on shortcuts that Grad-CAM cannot make.

Grad-CAM lung focus says where a model's COVID evidence sits on a 7x7 grid, but each cell of
that grid reads most of the image, so a model can show its evidence inside the lungs and still
decide by what lies outside them (markers, borders, a hospital's exposure). This check asks the
decision itself: the validation images with their (grown) lungs set to black, the way
``lung_mask`` hides the rest, and the COVID AUC the model reaches on them. 0.5 means it cannot
tell COVID from the other classes without the lungs; the higher, the more it can. The outline
of the hidden lungs stays visible, so a model may still read the lungs' shape; everything else
it reads lies outside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from cxrdata import apply_region, hide_lungs
from search.metrics import COVID_LABEL
from search.space import TrialConfig

__all__ = ["HIDDEN_IMAGES", "hidden_lungs_auc", "hidden_lungs_entries", "hidden_lungs_proba"]

HIDDEN_IMAGES = 1024  # validation images with lung masks read per trial, evenly spaced (one forward pass each)


def hidden_lungs_entries(data: Any, config: TrialConfig, entries: np.ndarray, limit: int = HIDDEN_IMAGES) -> np.ndarray:
    """Of ``entries``, those with a lung mask and a decoded image, at most ``limit`` evenly spaced."""
    _, available, _ = data.lung_masks(config.image_size, config.crop)
    valid = data.arrays(config.image_size, config.crop).valid
    usable = np.sort(np.asarray(entries, dtype=np.int64))
    usable = usable[available[usable] & valid[usable]]
    if len(usable) <= limit:
        return np.asarray(usable)
    return np.unique(usable[np.linspace(0, len(usable) - 1, limit).round().astype(int)])


def hidden_lungs_proba(model: Any, data: Any, config: TrialConfig, entries: np.ndarray) -> np.ndarray:
    """The model's COVID probability on ``entries`` with their lungs hidden, seen through the
    trial's region (a crop is cut from the hidden image, as from the original)."""
    if len(entries) == 0:
        return np.zeros(0, dtype=np.float64)
    masks, available, _ = data.lung_masks(config.image_size, config.crop)
    images = np.asarray(data.arrays(config.image_size, config.crop).images[entries])
    hidden = hide_lungs(images, masks[entries], available[entries])
    seen = apply_region(hidden, masks[entries], available[entries], config.input_region).images
    proba = model.predict(seen.astype(np.float32), batch_size=config.batch_size, verbose=0)
    return np.asarray(proba, dtype=np.float64)[:, COVID_LABEL]


def hidden_lungs_auc(labels: np.ndarray, covid_proba: np.ndarray) -> float | None:
    """COVID-vs-rest AUC of ``covid_proba``; None unless both COVID and another class are present."""
    positive = np.asarray(labels) == COVID_LABEL
    if len(positive) == 0 or positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, covid_proba))
