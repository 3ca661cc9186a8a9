"""Training throughput of one trial: images per second, and GPU utilisation when there is a GPU.

    python -m bench.throughput [--backbones DenseNet121,MobileNetV2] [--image-size 128] [--epochs 3]

Trains each backbone on the shared sample's training split, on images (augmentation on, so
no feature cache), with the worker's precision settings (mixed precision and XLA on a GPU),
and prints images per second of the epochs after the first (the first includes tracing and
XLA compilation) for a frozen and an unfrozen backbone. On a machine with ``nvidia-smi``, a
sampler reads GPU utilisation every half second during training and prints its mean.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
from pathlib import Path

from bench.search_speed import SHARED
from cxrdata import scan
from search import TrialData, configure_precision, run_trial
from search.space import TrialConfig


class _GpuSampler:
    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.split()[0]))

    def __enter__(self) -> _GpuSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backbones", default="DenseNet121,MobileNetV2")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=SHARED / "cxr" / "radiography")
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    args = parser.parse_args(argv)
    policy = configure_precision()
    data = TrialData(scan(args.data))
    train_images = len(data.split("three").indices["train"])
    has_gpu = shutil.which("nvidia-smi") is not None
    print(f"precision {policy}; {train_images} training images per epoch; GPU sampler {'on' if has_gpu else 'off'}")
    print("backbone          freeze  images/s  GPU util %")
    for backbone in args.backbones.split(","):
        for depth in (1.0, 0.5):
            config = TrialConfig(
                backbone, depth, 128, 0.2, 1e-3, 0.5, "three", image_size=args.image_size,
                batch_size=args.batch_size, max_epochs=args.epochs, warmup_epochs=0, patience=args.epochs,
                weights=args.weights,
            )  # fmt: skip
            with _GpuSampler() as sampler:
                outcome = run_trial(config, data)
            steady = outcome.fit.history[1:] or outcome.fit.history
            rate = train_images * len(steady) / sum(r.seconds for r in steady)
            util = f"{sum(sampler.samples) / len(sampler.samples):.0f}" if sampler.samples else "-"
            print(f"{backbone:<16}  {depth:<6}  {rate:8.0f}  {util}")


if __name__ == "__main__":
    main()
