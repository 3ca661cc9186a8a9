"""The launch's command line: flags, their checks, and the help text."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from search._engines import ENGINES, TUNERS
from search.store import add_storage_argument

__all__ = ["DEFAULT_STUDY", "parse_args"]


DEFAULT_STUDY = "cxr-search"


def _positive(name: str) -> type:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{name}` must be a whole number, but got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"`{name} >= 1` must hold, but got {value}")
        return value

    parse.__name__ = name
    return parse  # type: ignore[return-value]


def _fraction(name: str) -> type:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{name}` must be a number, but got {text!r}") from None
        if not 0.0 < value < 1.0:
            raise argparse.ArgumentTypeError(f"`0 < {name} < 1` must hold, but got {value}")
        return value

    parse.__name__ = name
    return parse  # type: ignore[return-value]


def _folds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`--folds` must be a whole number, but got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"`--folds >= 2` must hold (leave it out for one train/validation split), but got {value}"
        )
    return value


def _min_lung_focus_ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"`--min-lung-focus-ratio >= 0` must hold, but got {text!r}")
    return value


def _max_hidden_lungs_auc(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.5 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"`0.5 <= --max-hidden-lungs-auc <= 1` must hold, but got {text!r}")
    return value


def _focus_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise argparse.ArgumentTypeError(f"`0 <= --focus-weight <= 100` must hold, but got {text!r}")
    return value


def _gpu_list(text: str) -> list[int]:
    try:
        gpus = [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"`--gpus` must be comma-separated GPU indices like 0,1, but got {text!r}"
        ) from None
    if not gpus or len(set(gpus)) != len(gpus) or min(gpus) < 0:
        raise argparse.ArgumentTypeError(f"`--gpus` must list distinct GPU indices >= 0, but got {text!r}")
    return gpus


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m search.launch", description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--trials", type=_positive("--trials"), required=True, help="trials to run now (added to a resumed study)"
    )
    p.add_argument("--data", help="dataset root (default for a resumed study: the path it was created with)")
    add_storage_argument(p)
    p.add_argument("--study", default=DEFAULT_STUDY, help=f"study name (default: {DEFAULT_STUDY})")
    p.add_argument("--workers", type=_positive("--workers"), default=1, help="local worker processes (default: 1)")
    p.add_argument("--gpus", type=_gpu_list, help="GPU indices, one worker per GPU (e.g. 0,1,2,3); overrides --workers")
    p.add_argument("--config", help="search space TOML (default: the packaged search/space/default.toml)")
    p.add_argument("--weights", default="imagenet", help="imagenet (download), none, or a folder of Keras weight files")
    p.add_argument("--image-size", type=_positive("--image-size"), help="input size in pixels (overrides the config)")
    p.add_argument(
        "--max-epochs", type=_positive("--max-epochs"), help="epochs per trial at most (overrides the config)"
    )
    p.add_argument("--backbones", type=_names, help="comma-separated backbones to search (overrides the config)")
    p.add_argument("--schemes", type=_names, help="comma-separated class schemes: binary, three, four")
    p.add_argument(
        "--regions",
        type=_names,
        help="comma-separated input regions to search: full, lung_crop, lung_mask, lung_crop_mask",
    )
    p.add_argument("--pruner", help="percentile, median, hyperband or none (overrides the config)")
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--target-specificity",
        type=_fraction("--target-specificity"),
        help="choose each trial's COVID threshold on validation for this specificity (default: 0.95)",
    )
    target.add_argument(
        "--target-sensitivity",
        type=_fraction("--target-sensitivity"),
        help="... or for this sensitivity; the ranking then maximises specificity",
    )
    p.add_argument(
        "--folds",
        type=_folds,
        help="K-fold cross-validation inside train+validation (K >= 2; the test split stays out)",
    )
    p.add_argument(
        "--min-lung-focus-ratio",
        type=_min_lung_focus_ratio,
        metavar="R",
        help="constraint: a completed trial whose Grad-CAM lung focus / lung area is below R (1.0: a flat map) "
        "or unmeasured is infeasible; Optuna avoids such trials and they rank last (overrides the config)",
    )
    p.add_argument(
        "--max-hidden-lungs-auc",
        type=_max_hidden_lungs_auc,
        metavar="A",
        help="constraint: a completed trial whose COVID AUC on validation X-rays with the lungs hidden is above A "
        "or below 1 - A (0.5: it cannot tell COVID without the lungs) or unmeasured is infeasible; Optuna avoids "
        "such trials and they rank last (overrides the config)",
    )
    p.add_argument(
        "--focus-weight",
        type=_focus_weight,
        metavar="W",
        help="train every trial with W x its COVID Grad-CAM evidence outside the lungs added to the loss "
        "(0 turns the penalty off; overrides the config's focus_weight, default 2)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed (default: 0)")
    p.add_argument("--split-seed", type=int, default=0, help="train/val/test split seed (default: 0)")
    p.add_argument(
        "--artifacts", help="artifact folder shared by workers, or s3://BUCKET (default: artifacts/ beside the db)"
    )
    p.add_argument("--cache-dir", help="decoded-image cache (default: .cache/ beside the database)")
    p.add_argument(
        "--lung-model",
        default="auto",
        help="lung masks for images the dataset has none for: auto (default: the packaged segmenter), none "
        "(lung focus only where the dataset has masks), or a segmenter .keras file (python -m cxrdata.lungs train)",
    )
    p.add_argument(
        "--keep-models",
        type=int,
        default=5,
        help="save models of trials entering the top N by the ranking or by validation loss (default: 5)",
    )
    p.add_argument("--recycle-after", type=_positive("--recycle-after"), default=10, help="trials per worker process")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="optuna",
        help="optuna (default; many workers, pruning) or keras-tuner (one process, KerasTuner's oracles)",
    )
    p.add_argument(
        "--tuner",
        choices=TUNERS,
        default="hyperband",
        help="KerasTuner oracle with --engine keras-tuner (default: hyperband)",
    )
    p.add_argument(
        "--timeout",
        type=_positive("--timeout"),
        help="seconds after which no new trial starts (running trials finish); with --trials, whichever comes first",
    )
    return p.parse_args(argv)
