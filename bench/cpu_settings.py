"""Do XLA or bfloat16 speed up the trainable tail on a CPU? Seconds per epoch for each setting.

    python -m bench.cpu_settings [--backbones MobileNetV2,DenseNet121] [--epochs 4]

Keras compiles with ``jit_compile="auto"`` (XLA on a GPU, not on a CPU), and the worker's
``auto`` precision is mixed float16 on a GPU and float32 on a CPU. This checks both choices for
what a half-frozen trial trains on the CPU (the tail above the freeze boundary, fitted on cached
activations; random activations of the real shape, since speed does not depend on the values),
one fresh process per setting. ``mixed_bfloat16`` is the mixed precision a CPU can run, fast
only where the CPU has bfloat16 instructions (AVX512-BF16, AMX).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.search_speed import SHARED

TRAIN, VAL, BATCH = 1260, 270, 32  # the shared sample's three-class split at 70/15/15
SETTINGS = {  # name: (dtype policy, XLA)
    "float32": ("float32", False),
    "float32 + XLA": ("float32", True),
    "mixed_bfloat16": ("mixed_bfloat16", False),
}


def _one(backbone: str, setting: str, epochs: int, weights: str) -> list[float]:
    import keras

    policy, jit = SETTINGS[setting]
    keras.config.set_dtype_policy(policy)  # before the model exists, as the worker does

    import numpy as np
    import tensorflow as tf

    from search.features import find_boundary
    from search.model import build_model
    from search.space import TrialConfig

    config = TrialConfig(backbone, 0.5, 128, 0.2, 1e-3, 0.0, "three", weights=weights)
    boundary = find_boundary(build_model(config, 3).model)
    assert boundary is not None
    rng = np.random.default_rng(0)
    xs = tuple(rng.random((TRAIN + VAL, *t.shape[1:]), dtype=np.float32) for t in boundary.front.outputs)
    y = rng.integers(0, 3, TRAIN + VAL)

    def data(rows: slice) -> tf.data.Dataset:
        x = tuple(a[rows] for a in xs)
        return tf.data.Dataset.from_tensor_slices((x if len(x) > 1 else x[0], y[rows])).batch(BATCH).prefetch(2)

    train, val = data(slice(0, TRAIN)), data(slice(TRAIN, None))
    boundary.tail.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", jit_compile=jit
    )
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        boundary.tail.fit(train, validation_data=val, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backbones", default="MobileNetV2,DenseNet121")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="among: %(default)s")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    parser.add_argument("--one", nargs=2, metavar=("BACKBONE", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child: print the epoch times
        print(" ".join(f"{s:.2f}" for s in _one(args.one[0], args.one[1], args.epochs, args.weights)))
        return
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"--settings must name settings among {', '.join(SETTINGS)}, but got {unknown}.")
    print("backbone (freeze 0.5)  setting         first epoch s  later epochs s (mean)")
    for backbone in args.backbones.split(","):
        for setting in settings:
            done = subprocess.run(
                [sys.executable, "-m", "bench.cpu_settings", "--one", backbone, setting, "--epochs", str(args.epochs),
                 "--weights", args.weights],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            times = [float(t) for t in done.stdout.split()]
            later = sum(times[1:]) / max(1, len(times) - 1)
            print(f"{backbone:<21}  {setting:<14}  {times[0]:13.1f}  {later:.1f}")


if __name__ == "__main__":
    main()
