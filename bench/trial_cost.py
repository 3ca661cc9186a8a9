"""Seconds per trial for the same configurations: this project's trial runner against the usual loop.

    python -m bench.trial_cost [--depths 0.5,0.875] [--repeats 2] [--out DIR]

The speed race (bench.search_speed) lets each contender's sampler choose its trials, so its
trials per hour depend on which backbones each happened to draw. This runs one fixed list of
configurations through both: every backbone of bench/space.toml with the whole backbone frozen
and at each partial freeze depth, the same head, dropout and learning rate. It prints seconds
per trial for each, and trials per hour for a search where half the trials freeze the whole
backbone and every backbone is equally likely.

- project: ``search._trial.run_trial`` (what a worker runs) in one process with a fresh on-disk
  cache and no pruning (pruning saves more on top: bench.pruning). A configuration's first run
  computes its cached features or boundary activations ("first"); later runs read them
  ("cached"), as every later trial of a search with that backbone and depth does.
- plain: the usual loop's trial (bench.search_speed): a tf.data pipeline decoding the PNGs in
  every epoch, the model rebuilt, ``fit`` for ``max_epochs`` epochs. One run per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from bench.search_speed import REPO, SHARED, SPACE, _usual_data, plain_trial

PARAMS = {"head_width": 128, "dropout": 0.2, "learning_rate": 1e-3, "augment_strength": 0.0, "scheme": "three"}


def _configs(backbones: list[str], depths: list[float], weights: str) -> list[Any]:
    import optuna

    from search.space import load_space

    space = load_space(SPACE)
    configs = []
    for backbone in backbones or space.backbones:
        for depth in (1.0, *depths):
            trial = optuna.trial.FixedTrial({**PARAMS, "backbone": backbone, "freeze_depth": depth})
            configs.append(space.suggest(trial, weights=weights, seed=0))  # type: ignore[arg-type]
    return configs


def _emit(config: Any, run: int, seconds: float, epochs: int, sensitivity: float | None) -> None:
    row = {"backbone": config.backbone, "depth": config.freeze_depth, "run": run, "seconds": seconds,
           "epochs": epochs, "covid_sensitivity": sensitivity}  # fmt: skip
    print(json.dumps(row), flush=True)


def run_project(args: argparse.Namespace, backbones: list[str], depths: list[float]) -> None:
    from cxrdata import scan
    from search import TrialData, configure_precision, run_trial
    from search.space import load_space

    configure_precision()  # what a worker does at start
    trial_data = TrialData(manifest=scan(args.data), cache_dir=args.cache)
    training = load_space(SPACE).training
    trial_data.arrays(training.image_size, training.crop)  # decoded once per worker before any trial
    for config in _configs(backbones, depths, args.weights):
        for run in range(args.repeats):
            outcome = run_trial(config, trial_data)
            sensitivity = outcome.metrics.covid_sensitivity if outcome.metrics else None
            _emit(config, run, outcome.wall_time_s, len(outcome.fit.history), sensitivity)


def run_plain(args: argparse.Namespace, backbones: list[str], depths: list[float]) -> None:
    from search.space import load_space

    training = load_space(SPACE).training
    train, val, labels, classes = _usual_data(args.data, training.image_size, training.batch_size)
    for config in _configs(backbones, depths, args.weights):
        started = time.perf_counter()
        scores = plain_trial(config, train, val, labels, len(classes))
        _emit(config, 0, time.perf_counter() - started, int(scores["epochs"]), scores["covid_sensitivity"])


def _child(contender: str, args: argparse.Namespace, cache: Path) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "bench.trial_cost", "--run", contender, "--data", str(args.data),
               "--backbones", args.backbones, "--depths", args.depths, "--repeats", str(args.repeats),
               "--weights", args.weights, "--cache", str(cache)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {contender} process failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


Row = dict[str, Any]
HEADER = "backbone          freeze  plain s  epochs  project s (first)  project s (cached)  epochs  speed-up (cached)"


def _cell(rows: list[Row], backbone: str, depth: float, first: bool) -> Row | None:
    """Mean seconds (and the epochs) of one configuration's first runs, or of its later ones."""
    mine = [r for r in rows if r["backbone"] == backbone and r["depth"] == depth and (r["run"] == 0) == first]
    return {"seconds": mean(r["seconds"] for r in mine), "epochs": mine[0]["epochs"]} if mine else None


def _per_hour(rows: list[Row], backbones: list[str], depth: float, first: bool) -> float:
    """Trials per hour of a 50/50 mix of frozen and ``depth`` trials over equally likely backbones."""
    cells = [_cell(rows, b, d, first) for b in backbones for d in (1.0, depth)]
    return 3600.0 / mean(float(c["seconds"]) for c in cells if c is not None)


def _table(plain: list[Row], project: list[Row], depths: list[float]) -> str:
    backbones = list(dict.fromkeys(r["backbone"] for r in plain))
    lines = [HEADER]
    for backbone in backbones:
        for depth in (1.0, *depths):
            p, first = _cell(plain, backbone, depth, True), _cell(project, backbone, depth, True)
            cached = _cell(project, backbone, depth, False)
            if p is None or first is None or cached is None:
                continue
            lines.append(
                f"{backbone:<16}  {depth:<6}  {p['seconds']:7.1f}  {p['epochs']:6d}  {first['seconds']:17.1f}  "
                f"{cached['seconds']:18.1f}  {cached['epochs']:6d}  {p['seconds'] / cached['seconds']:16.1f}x"
            )
    lines += [
        "",
        "half the trials freeze the whole backbone, the other half at the depth; backbones equally likely:",
        "depth   plain trials/h  project trials/h (cached)  speed-up  project trials/h (first runs)  speed-up",
    ]
    for depth in depths:
        plain_h = _per_hour(plain, backbones, depth, True)
        cached_h, first_h = _per_hour(project, backbones, depth, False), _per_hour(project, backbones, depth, True)
        lines.append(
            f"{depth:<6}  {plain_h:14.0f}  {cached_h:25.0f}  {cached_h / plain_h:7.1f}x  {first_h:29.0f}  "
            f"{first_h / plain_h:7.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "cxr" / "radiography")
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    parser.add_argument("--backbones", default="", help="comma-separated (default: those of bench/space.toml)")
    parser.add_argument("--depths", default="0.5,0.875", help="partial freeze depths (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="project runs per configuration (the first is cold)")
    parser.add_argument("--out", type=Path, help="where the raw rows go (default: a temporary folder)")
    parser.add_argument("--run", choices=("project", "plain"), help=argparse.SUPPRESS)  # a contender's process
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    depths = [float(d) for d in args.depths.split(",")]
    backbones = [b for b in args.backbones.split(",") if b]
    if not all(0 < d < 1 for d in depths) or args.repeats < 2:
        parser.error(
            f"partial depths must lie in (0, 1) and --repeats be at least 2, but got {depths}, {args.repeats}."
        )
    if args.run == "project":
        return run_project(args, backbones, depths)
    if args.run == "plain":
        return run_plain(args, backbones, depths)
    out = args.out or Path(tempfile.mkdtemp(prefix="cxr-cost-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = {c: _child(c, args, out / "cache") for c in ("project", "plain")}
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(_table(rows["plain"], rows["project"], depths))


if __name__ == "__main__":
    main()
