"""Epochs saved by pruning: the same search with the median pruner and with none.

    python -m bench.pruning [--trials 30] [--out DIR]

Two searches of ``--trials`` trials each on the shared sample (bench/space.toml, one worker,
same seed, each with its own fresh caches), one with ``--pruner median`` and one with
``--pruner none``. Prints epochs trained, trials pruned, wall time, best validation loss and
best validation COVID sensitivity of each.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from bench.search_speed import REPO, SHARED, SPACE
from search.store import ResultStore


def _search(out: Path, pruner: str, trials: int, data: Path, weights: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{out / 'optuna.db'}"
    command = [
        sys.executable, "-m", "search.launch", "--trials", str(trials), "--config", str(SPACE), "--pruner", pruner,
        "--data", str(data), "--weights", weights, "--storage", storage, "--keep-models", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    with (out / "launch.log").open("w") as log:
        subprocess.run(command, cwd=out, env=env, stdout=log, stderr=log, check=True)
    wall = time.perf_counter() - started
    rows = ResultStore(storage).trials("cxr-search")
    study = optuna.load_study(study_name="cxr-search", storage=storage)
    best_loss = min((v for t in study.trials for v in t.intermediate_values.values()), default=float("nan"))
    complete = [r for r in rows if r.state == "COMPLETE"]
    best = max(complete, key=lambda r: (r.covid_sensitivity or 0, r.accuracy or 0), default=None)
    return {
        "pruner": pruner,
        "trials": len(rows),
        "pruned": sum(r.state == "PRUNED" for r in rows),
        "epochs": sum(r.epochs_run or 0 for r in rows),
        "wall_s": wall,
        "best_val_loss": best_loss,
        "best_sens": None if best is None else best.covid_sensitivity,
        "its_acc": None if best is None else best.accuracy,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--data", type=Path, default=SHARED / "cxr" / "radiography")
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="cxr-pruning-"))
    results = [_search(root / p, p, args.trials, args.data, args.weights) for p in ("median", "none")]
    header = ["pruner", "trials", "pruned", "epochs trained", "wall s", "best val_loss", "best COVID sens", "its acc"]
    lines = [header] + [
        [
            r["pruner"],
            str(r["trials"]),
            str(r["pruned"]),
            str(r["epochs"]),
            f"{r['wall_s']:.0f}",
            f"{r['best_val_loss']:.4f}",
            f"{r['best_sens']:.3f}",
            f"{r['its_acc']:.3f}",
        ]
        for r in results
    ]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    saved = 1 - results[0]["epochs"] / max(results[1]["epochs"], 1)
    print(f"epochs saved by pruning: {saved:.0%}")


if __name__ == "__main__":
    main()
