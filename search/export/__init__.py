"""``python -m search.export --study NAME --out DIR``: package the winning model, ready to serve.

By default the package is the greedy ensemble (Caruana et al. 2004) of the study's top
trials, chosen on their stored validation probabilities without retraining; ``--trial`` or
``--ensemble 1`` package one trial, ``--refit`` trains the members again on
train+validation. The COVID threshold is chosen on validation for the study's operating
target. The model is measured once on the test split, written as Keras (the preprocessing
inside: an RGB image in [0, 255] at the model's size in, class probabilities out),
SavedModel and TFLite with a model card (JSON and Markdown), and every file is reloaded and
checked against the in-memory model before the export says it succeeded.
"""

from search.export._card import INTENDED_USE, WARNING, result_caveats
from search.export._cli import main
from search.export._export import ExportResult, export
from search.export._files import FORMATS, KERAS_TOLERANCE, TFLITE_TOLERANCE, tflite_predict, verify
from search.export._members import DEFAULT_ENSEMBLE

__all__ = [
    "DEFAULT_ENSEMBLE",
    "FORMATS",
    "INTENDED_USE",
    "KERAS_TOLERANCE",
    "TFLITE_TOLERANCE",
    "WARNING",
    "ExportResult",
    "export",
    "main",
    "result_caveats",
    "tflite_predict",
    "verify",
]
