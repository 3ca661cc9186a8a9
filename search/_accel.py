"""Per-process accelerator settings: mixed precision on GPUs, XLA through Keras' own default.

Keras compiles with ``jit_compile="auto"``, which is XLA whenever a GPU is visible, so
models are XLA-compiled on GPU workers without a setting here. Mixed precision (float16
compute, float32 weights, a float32 softmax) roughly doubles the throughput of recent GPUs
and is switched on there unless ``CXR_PRECISION`` says otherwise.
"""

from __future__ import annotations

from search._settings import PRECISIONS, settings

__all__ = ["PRECISIONS", "apply_precision", "configure_precision"]

_chosen: str | None = None  # the policy this process chose; Keras' clear_session forgets it


def configure_precision(precision: str | None = None) -> str:
    """Set Keras' global dtype policy for this process; return its name.

    ``auto`` (the default, or ``CXR_PRECISION``) means mixed precision when a GPU is visible
    and float32 otherwise.
    """
    import keras
    import tensorflow as tf

    if precision is None:
        precision = settings().precision  # checked when read
    elif precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(PRECISIONS)}, but got {precision!r}.")
    if precision == "auto":
        precision = "mixed" if tf.config.list_physical_devices("GPU") else "float32"
    global _chosen
    _chosen = "mixed_float16" if precision == "mixed" else "float32"
    keras.config.set_dtype_policy(_chosen)
    return _chosen


def apply_precision() -> None:
    """Set the chosen policy again (after ``keras.backend.clear_session()``, which resets it)."""
    if _chosen is not None:
        import keras

        keras.config.set_dtype_policy(_chosen)
