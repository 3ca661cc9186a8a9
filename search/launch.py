"""``python -m search.launch``: run a model search on a chest X-ray dataset.

Creates the results schema and the study once, then runs local worker processes that share
the study database. Re-running with the same --study resumes it.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from tqdm import tqdm

from cxrdata import DatasetError, Manifest, get_scheme, load_images, scan
from search._engines import ENGINES, KERAS_TUNER, TUNERS
from search._errors import SearchError
from search._study import study_ranking
from search.artifacts import artifact_location, is_s3
from search.backbones import check_weights, get_backbone, resolve_weights
from search.space import SearchSpace, load_space
from search.store import (
    DEFAULT_STORAGE,
    MIN_SPECIFICITY,
    STORAGE_VARIABLE,
    ResultStore,
    TrialRow,
    add_storage_argument,
    creation_lock,
    mask_url,
)
from search.worker import WorkerJob, run_worker

__all__ = ["main", "parse_args", "prepare"]

DEFAULT_STUDY = "cxr-search"
POLL_S = 2.0


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
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed (default: 0)")
    p.add_argument("--split-seed", type=int, default=0, help="train/val/test split seed (default: 0)")
    p.add_argument(
        "--artifacts", help="artifact folder shared by workers, or s3://BUCKET (default: artifacts/ beside the db)"
    )
    p.add_argument("--cache-dir", help="decoded-image cache (default: .cache/ beside the database)")
    p.add_argument(
        "--lung-model", help="lung segmenter (.keras, from python -m cxrdata.lungs train) for images without masks"
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


def _beside_db(storage: str, name: str) -> Path:
    url = make_url(storage)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / name
    return Path(name).resolve()


@dataclass(frozen=True)
class Plan:
    storage: str
    study: str
    trials: int
    workers: int
    recycle_after: int
    keep_models: int
    data: str
    space: SearchSpace
    gpus: tuple[int, ...] | None = None
    timeout_s: int | None = None
    engine: str = "optuna"
    tuner: str = "hyperband"


def _check_weights_available(space: SearchSpace, weights: str) -> str:
    weights = check_weights(weights)
    for name in space.backbones:
        resolve_weights(get_backbone(name), weights, space.training.image_size)
    return weights


def _space(args: argparse.Namespace) -> SearchSpace:
    space = load_space(args.config).with_overrides(
        backbones=args.backbones,
        schemes=args.schemes,
        image_size=args.image_size,
        max_epochs=args.max_epochs,
        pruner=args.pruner,
        target_specificity=args.target_specificity,
        target_sensitivity=args.target_sensitivity,
        folds=args.folds,
    )
    return space.check()


# When the schemes were not chosen, the richest one the data has the classes for.
_FALLBACK_ORDER = ("four", "three", "binary")


def _schemes_for(space: SearchSpace, manifest: Manifest, *, explicit: bool) -> SearchSpace:
    """The space's schemes when the data has their classes. Default schemes the data cannot
    serve (COVID and Normal folders only: no 'three') give way to those it can, said on stderr;
    schemes the user chose are refused instead, naming what would work."""

    def fits(name: str) -> bool:
        try:
            manifest.check_scheme(get_scheme(name))
        except DatasetError:
            return False
        return True

    unfit = [s for s in space.schemes if not fits(s)]
    if not unfit:
        return space
    usable = [s for s in space.schemes if s not in unfit] or [s for s in _FALLBACK_ORDER if fits(s)][:1]
    if explicit or not usable:
        try:
            manifest.check_scheme(get_scheme(unfit[0]))
        except DatasetError as exc:
            hint = f" Choose --schemes {','.join(usable)} for these classes." if usable else ""
            raise DatasetError(f"{exc}{hint}") from None
    print(
        f"The default scheme(s) {', '.join(unfit)} need classes this dataset does not have "
        f"({', '.join(manifest.counts())}): searching {', '.join(usable)} instead (choose with --schemes).",
        file=sys.stderr,
    )
    return space.with_overrides(schemes=usable).check()


def _existing_data_path(storage: str, study: str) -> str | None:
    import optuna

    try:
        return str(optuna.load_study(study_name=study, storage=storage).user_attrs.get("cxr_data_path")) or None
    except KeyError:
        return None


def prepare(args: argparse.Namespace) -> Plan:
    """Everything before the first trial: check arguments, read the data, create schema and study."""
    from search._study import StudyInfo, create_study, make_storage

    workers = len(args.gpus) if args.gpus else args.workers
    if args.engine == KERAS_TUNER and workers > 1:
        raise SearchError(
            f"`--engine keras-tuner` runs in one process (KerasTuner's oracle is not shared through the study "
            f"database), but got {workers} workers: use --workers 1, or --engine optuna for many workers."
        )
    space = _space(args)
    weights = _check_weights_available(space, args.weights)
    with creation_lock(args.storage):  # two launches at once: the second waits, then finds the tables
        ResultStore(args.storage).create_schema()
        storage = make_storage(args.storage)
    data = args.data or _existing_data_path(args.storage, args.study)
    if data is None:
        raise SearchError(f"`--data` must name the dataset for a new study, but none was given for {args.study!r}.")
    print(f"Reading {data} ...", file=sys.stderr)
    manifest = scan(data, progress=True)
    space = _schemes_for(space, manifest, explicit=bool(args.schemes or args.config))
    lung_model = _lung_model(args.lung_model, manifest)
    if manifest.excluded:
        print(f"{len(manifest.excluded)} file(s) excluded (see python -m cxrdata.inspect {data}).", file=sys.stderr)
    cache_dir = Path(args.cache_dir).resolve() if args.cache_dir else _beside_db(args.storage, ".cache")
    artifacts = artifact_location(args.artifacts) if args.artifacts else str(_beside_db(args.storage, "artifacts"))
    info = StudyInfo(
        space=space,
        data_path=str(Path(data).resolve()),
        dataset_fingerprint=manifest.fingerprint,
        weights=weights,
        seed=args.seed,
        split_seed=args.split_seed,
        artifacts=artifacts,
        cache_dir=str(cache_dir),
        lung_model=lung_model,
    )
    with creation_lock(args.storage):  # ... and finds the first one's study, whole
        create_study(storage, args.study, info)
    _warm_caches(manifest, space, cache_dir, artifacts)
    gpus = tuple(args.gpus) if args.gpus else None
    return Plan(
        args.storage,
        args.study,
        args.trials,
        workers,
        args.recycle_after,
        args.keep_models,
        info.data_path,
        space,
        gpus,
        args.timeout,
        args.engine,
        args.tuner,
    )


def _lung_model(path: str | None, manifest: Manifest) -> str | None:
    """The segmenter's absolute path; without one, say whether lung focus can be measured."""
    with_masks = sum(1 for e in manifest.entries if e.mask)
    if path is None:
        if with_masks < len(manifest.entries):
            missing = len(manifest.entries) - with_masks
            print(
                f"{missing} image(s) have no lung mask: lung focus is measured on the {with_masks} that do. "
                "Pass --lung-model (train one with python -m cxrdata.lungs train --masks DIR) to cover the rest.",
                file=sys.stderr,
            )
        return None
    model = Path(path)
    if not model.is_file() or model.suffix != ".keras":
        raise SearchError(f"`--lung-model` must be an existing .keras file, but got '{path}'.")
    return str(model.resolve())


def _warm_caches(manifest: Manifest, space: SearchSpace, cache_dir: Path, artifacts: str) -> None:
    """Decode every image once here, so workers start by mapping the cache, not racing to fill it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not is_s3(artifacts):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    (cache_dir / f"manifest-{manifest.fingerprint}.json").write_text(manifest.to_json())
    load_images(manifest, space.training.image_size, crop=space.training.crop, cache_dir=cache_dir, progress=True)


def _child(job: WorkerJob) -> None:
    try:
        run_worker(job)
    except KeyboardInterrupt:
        sys.exit(130)


def _shares(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


class _Progress:
    """A progress bar fed by polling the study: counts by state and the best-ranked figure."""

    def __init__(self, plan: Plan, before: int) -> None:
        import optuna

        self.study = optuna.load_study(study_name=plan.study, storage=plan.storage)
        self.store = ResultStore(plan.storage)
        self.ranking = study_ranking(plan.space)
        self.before = before
        self.total = plan.trials
        self.bar = tqdm(total=plan.trials, desc="Trials", unit="trial")
        self.shown: tuple[object, ...] = ()

    def update(self) -> None:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        # The database may be briefly away (a restart): the next poll catches up.
        with contextlib.suppress(SQLAlchemyError, StorageInternalError):
            self._update()

    def _update(self) -> None:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)[self.before :]
        done = [t for t in trials if t.state.is_finished()]
        counts = {s: sum(t.state == s for t in done) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        best = self.store.ranked(self.study.study_name, limit=1, ranking=self.ranking)
        sens = best[0].op_sensitivity if best else None
        state = (len(done), *counts.values(), sens)
        if state == self.shown:
            return  # redraw only on change: logs stay short when output is not a terminal
        self.shown = state
        self.bar.set_postfix(
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            best_sens_at_target="-" if sens is None else f"{sens:.3f}",
        )
        self.bar.n = min(len(done), self.total)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """Ctrl-C sets an event instead of raising: an exception raised inside a database call
    could be swallowed as a database error (SQLite reports an interrupted query as one)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread; KeyboardInterrupt still works
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


EXIT_OK, EXIT_WORKER_DIED, EXIT_INTERRUPTED = 0, 1, 130


def run_workers(plan: Plan) -> int:
    """Run the plan's trials in local processes; return the launch's exit status.

    A worker that dies (killed for memory, a crash) gets no further trials, since it would
    most likely die again; the others go on, and the launch ends with a non-zero status.
    """
    import optuna

    before = len(optuna.load_study(study_name=plan.study, storage=plan.storage).get_trials(deepcopy=False))
    remaining = _shares(plan.trials, plan.workers)
    deadline = None if plan.timeout_s is None else time.time() + plan.timeout_s
    ctx = mp.get_context("spawn")
    slots: list[mp.process.BaseProcess | None] = [None] * plan.workers
    progress = _Progress(plan, before)
    interrupted, died = False, False
    try:
        with _ctrl_c() as stop:
            while not stop.is_set():
                for i in range(plan.workers):
                    proc = slots[i]
                    if proc is not None and not proc.is_alive():
                        proc.join()
                        slots[i] = None
                        if proc.exitcode != 0 and not stop.is_set():
                            died, remaining[i] = True, 0
                            print(
                                f"\nerror: worker {i} must exit cleanly, but it stopped with exit code "
                                f"{proc.exitcode} (see its error above); it gets no more trials.",
                                file=sys.stderr,
                            )
                    if deadline is not None and time.time() >= deadline:
                        remaining[i] = 0  # out of time: start nothing new
                    if slots[i] is None and remaining[i] > 0:
                        # A fresh process every `recycle_after` trials keeps memory flat.
                        n = min(remaining[i], plan.recycle_after)
                        remaining[i] -= n
                        job = WorkerJob(
                            plan.storage,
                            plan.study,
                            n,
                            data=plan.data,
                            worker_index=i,
                            keep_models=plan.keep_models,
                            deadline=deadline,
                        )
                        slots[i] = ctx.Process(target=_child, args=(job,), name=f"cxr-worker-{i}")
                        slots[i].start()  # type: ignore[union-attr]
                progress.update()
                if all(s is None for s in slots) and not any(remaining):
                    break
                stop.wait(POLL_S)
            interrupted = stop.is_set()
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        print("\nStopping: the running trials are recorded as failed; completed trials are kept.", file=sys.stderr)
        for proc in slots:
            if proc is not None and proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGINT)
        for proc in slots:
            if proc is not None:
                proc.join(timeout=120)
    progress.update()
    progress.close()
    return EXIT_INTERRUPTED if interrupted else EXIT_WORKER_DIED if died else EXIT_OK


def _tuner_child(plan: Plan, deadline: float | None) -> None:
    from search.kerastuner import run_keras_tuner
    from search.worker import _interrupt_once, _select_gpu

    _select_gpu(plan.gpus[0] if plan.gpus else None)
    _interrupt_once()
    try:
        run_keras_tuner(
            plan.storage, plan.study, plan.tuner, plan.trials, data=plan.data, keep_models=plan.keep_models,
            deadline=deadline,
        )  # fmt: skip
    except KeyboardInterrupt:
        sys.exit(130)


def run_tuner(plan: Plan) -> int:
    """Run the KerasTuner engine in one child process; return the launch's exit status."""
    deadline = None if plan.timeout_s is None else time.time() + plan.timeout_s
    proc = mp.get_context("spawn").Process(target=_tuner_child, args=(plan, deadline), name="cxr-keras-tuner")
    proc.start()
    with _ctrl_c() as stop:
        while proc.is_alive() and not stop.wait(POLL_S):
            pass
    if stop.is_set():
        print("\nStopping: the running trial is recorded as failed; completed trials are kept.", file=sys.stderr)
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGINT)
        proc.join(timeout=120)
        return EXIT_INTERRUPTED
    proc.join()
    return EXIT_OK if proc.exitcode == 0 else EXIT_WORKER_DIED


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return "-" if value is None else f"{value:.3f} [{_fmt(low, 2)}, {_fmt(high, 2)}]"


def top_table(rows: Sequence[TrialRow]) -> str:
    """The ranked rows as a text table: the operating point's figures with their 95% intervals."""
    header = (
        "rank",
        "engine",
        "trial",
        "backbone",
        "scheme",
        "freeze",
        "COVID sens @ target [95% CI]",
        "COVID spec @ target",
        "threshold",
        "COVID AUC",
        "accuracy",
        "epochs",
        "time",
    )
    lines = [header] + [
        (
            str(i + 1),
            r.engine,
            str(r.trial_number),
            r.backbone,
            r.scheme,
            f"{r.freeze_depth:.2f}",
            _interval(r.op_sensitivity, r.op_sensitivity_low, r.op_sensitivity_high),
            _fmt(r.op_specificity),
            _fmt(r.covid_threshold, 4),
            _fmt(r.covid_auc),
            _fmt(r.accuracy),
            str(r.epochs_run),
            f"{r.wall_time_s:.0f}s",
        )
        for i, r in enumerate(rows)
    ]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        plan = prepare(args)
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Study {plan.study!r} in {mask_url(plan.storage)}: {plan.trials} trial(s) on {plan.workers} worker(s).",
        file=sys.stderr,
    )
    started = time.perf_counter()
    status = run_workers(plan) if plan.engine == "optuna" else run_tuner(plan)
    store = ResultStore(plan.storage)
    rows = store.ranked(plan.study, limit=5, ranking=study_ranking(plan.space))
    target = plan.space.training.target
    print(
        f"\nWall time {time.perf_counter() - started:.0f}s. Top trials (validation split; COVID threshold chosen "
        f"for {target.describe()}, ranked by the {'sensitivity' if target.kind == 'specificity' else 'specificity'} "
        f"it gives; those below argmax COVID specificity {MIN_SPECIFICITY:.2f} after the others):"
    )
    print(top_table(rows) if rows else "  no completed trial yet")
    if rows:
        storage = "" if plan.storage in (DEFAULT_STORAGE, os.environ.get(STORAGE_VARIABLE)) else " --storage URL"
        print(
            f"\nPackage the best model (an ensemble of the top trials, measured once on the test split):\n"
            f"  python -m search.export --study {plan.study}{storage} --out winner/"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
