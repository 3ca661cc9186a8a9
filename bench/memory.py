"""Memory per trial: resident memory of one worker process over 20 trials.

    python -m bench.memory [--trials 20] [--image-size 128]

Runs trials drawn from bench/space.toml one after another in this process (as a worker
does between recycles) on the shared sample, and prints the resident set size after each
trial, the route each phase trained on, and the growth per trial. ``search.launch`` starts
a fresh worker process every ``--recycle-after`` trials (default 10), which bounds whatever
growth this table shows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from bench.search_speed import SHARED, SPACE
from cxrdata import scan
from search import TrialData, run_trial
from search.space import load_space


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--data", type=Path, default=SHARED / "cxr" / "radiography")
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(SPACE)
    data = TrialData(scan(args.data), cache_dir=Path(tempfile.mkdtemp(prefix="cxr-memory-")))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    start = _rss_mb()
    print(f"before the first trial: {start:.0f} MB")
    print("trial  backbone          freeze  routes                          seconds  RSS MB")
    rss = []
    for _ in range(args.trials):
        trial = study.ask()
        config = space.suggest(trial, weights=args.weights, seed=0)
        began = time.perf_counter()
        outcome = run_trial(config, data)
        study.tell(trial, outcome.fit.best_val_loss)
        rss.append(_rss_mb())
        routes = ",".join(r.split(":")[0] for r in outcome.routes)
        print(
            f"{trial.number:<5}  {config.backbone:<16}  {config.freeze_depth:<6}  {routes:<30}  "
            f"{time.perf_counter() - began:7.1f}  {rss[-1]:6.0f}"
        )
    half = len(rss) // 2
    growth = (rss[-1] - rss[half]) / max(len(rss) - 1 - half, 1)
    print(f"growth over the second half: {growth:+.1f} MB per trial; peak {max(rss):.0f} MB")


if __name__ == "__main__":
    main()
