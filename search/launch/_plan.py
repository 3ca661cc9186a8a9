"""Everything before the first trial: check the arguments, read the data, create schema and study."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.engine import make_url

from cxrdata import DatasetError, Manifest, get_scheme, load_images, scan
from search._engines import KERAS_TUNER
from search._errors import SearchError
from search.artifacts import artifact_location, is_s3
from search.backbones import check_weights, get_backbone, resolve_weights
from search.logging import get_logger
from search.space import Range, SearchSpace, load_space
from search.store import ResultStore, creation_lock

_logger = get_logger(__name__)

__all__ = ["Plan", "prepare"]


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
        regions=args.regions,
        focus_weight=args.focus_weight,
        image_size=args.image_size,
        max_epochs=args.max_epochs,
        pruner=args.pruner,
        target_specificity=args.target_specificity,
        target_sensitivity=args.target_sensitivity,
        folds=args.folds,
        min_lung_focus_ratio=args.min_lung_focus_ratio,
        max_hidden_lungs_auc=args.max_hidden_lungs_auc,
    )
    return space.check()


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
    _logger.info(
        f"The default scheme(s) {', '.join(unfit)} need classes this dataset does not have "
        f"({', '.join(manifest.counts())}): searching {', '.join(usable)} instead (choose with --schemes)."
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
    from search._study import StudyInfo, check_engine_constraints, create_study, make_storage

    workers = len(args.gpus) if args.gpus else args.workers
    if args.engine == KERAS_TUNER and workers > 1:
        raise SearchError(
            f"`--engine keras-tuner` runs in one process (KerasTuner's oracle is not shared through the study "
            f"database), but got {workers} workers: use --workers 1, or --engine optuna for many workers."
        )
    space = _space(args)
    check_engine_constraints(space, args.engine)
    weights = _check_weights_available(space, args.weights)
    _check_lung_model(args.lung_model)  # before anything is written
    with creation_lock(args.storage):  # two launches at once: the second waits, then finds the tables
        ResultStore(args.storage).create_schema()
        storage = make_storage(args.storage)
    data = args.data or _existing_data_path(args.storage, args.study)
    if data is None:
        raise SearchError(f"`--data` must name the dataset for a new study, but none was given for {args.study!r}.")
    _logger.info(f"Reading {data} ...")
    manifest = scan(data, progress=True)
    space = _schemes_for(space, manifest, explicit=bool(args.schemes or args.config))
    lung_model = _lung_model(args.lung_model, manifest)
    space = _check_focus_measurable(space, manifest, lung_model)
    if manifest.excluded:
        _logger.info(f"{len(manifest.excluded)} file(s) excluded (see python -m cxrdata.inspect {data}).")
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
        study = create_study(storage, args.study, info)
    kept = study.user_attrs.get("cxr_lung_model")
    if kept != lung_model:  # a resumed study keeps what it was created with, so its trials stay comparable
        _logger.info(f"lung masks: the resumed study {args.study!r} keeps its segmenter: {kept or 'none'}")
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


AUTO, NONE = "auto", "none"


def _segmenter_problem(path: str) -> str | None:
    """Why ``path`` is not a lung segmenter, or None (run in a child: it loads TensorFlow)."""
    from cxrdata.lungs import load_segmenter

    try:
        load_segmenter(path)
    except DatasetError as exc:
        return str(exc)
    return None


def _check_lung_model(choice: str) -> None:
    """A segmenter file named by ``--lung-model`` is loaded and its shapes checked, in a child
    process: the launch's own process never loads TensorFlow."""
    if choice in (AUTO, NONE):
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from cxrdata.lungs import check_segmenter_file

    check_segmenter_file(choice)  # a missing or non-Keras file is named without starting a child
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            problem = pool.submit(_segmenter_problem, choice).result()
    except BrokenProcessPool:
        problem = f"`--lung-model` must be a lung segmenter Keras can load, but loading '{choice}' ended its process."
    if problem:
        raise DatasetError(problem)


def _lung_model(choice: str, manifest: Manifest) -> str | None:
    """The segmenter's absolute path for the images without a dataset mask (None: no segmenter
    is needed or wanted), and one line saying where the study's lung masks come from."""
    from cxrdata.lungs import check_segmenter_file, packaged_segmenter, segmenter_card

    total = len(manifest.entries)
    with_masks = sum(1 for e in manifest.entries if e.mask)
    missing = total - with_masks
    if missing == 0:
        _logger.info(f"lung masks: all {total} from the dataset")
        return str(Path(choice).resolve()) if choice not in (AUTO, NONE) else None
    if choice == NONE:
        measured = f"measured on the {with_masks} that have one" if with_masks else "not measured"
        _logger.info(
            f"lung masks: {with_masks} from the dataset, none for the other {missing} (--lung-model none): "
            f"lung focus is {measured}."
        )
        return None
    if choice == AUTO:
        model, source = packaged_segmenter(), "the packaged segmenter"
        if not model.is_file():
            raise SearchError(
                f"The packaged lung segmenter must be installed at '{model}', but it is missing: reinstall "
                "cxr-search, or pass --lung-model none or a segmenter file."
            )
    else:
        model, source = Path(choice), f"the segmenter '{choice}'"
    check_segmenter_file(model)
    held_out = (segmenter_card(model) or {}).get("held_out") or {}
    dice = f" (held-out Dice {held_out['dice_mean']:.3f})" if isinstance(held_out.get("dice_mean"), float) else ""
    _logger.info(f"lung masks: {with_masks} from the dataset, {missing} from {source}{dice}")
    return str(model.resolve())


def _check_focus_measurable(space: SearchSpace, manifest: Manifest, lung_model: str | None) -> SearchSpace:
    """A constraint on data where no trial's lung focus or lungs-hidden AUC can be measured (no
    dataset mask and ``--lung-model none``) would make every trial infeasible, and a lung region
    has nothing to cut: both refused. A focus penalty there has no lungs to favour: it is turned
    off, with a warning."""
    no_lungs = lung_model is None and not any(e.mask for e in manifest.entries)
    regions = [r for r in space.regions if r != "full"]
    if regions and no_lungs:
        raise SearchError(
            f"The input regions {', '.join(regions)} need lung masks, but the dataset has none and --lung-model "
            "is none; leave --lung-model at auto (the packaged segmenter), pass a segmenter file, or search "
            "`full` only."
        )
    t = space.training
    for name, value, what in (
        ("min_lung_focus_ratio", t.min_lung_focus_ratio, "measure lung focus"),
        ("max_hidden_lungs_auc", t.max_hidden_lungs_auc, "hide the lungs"),
    ):
        if value is not None and no_lungs:
            raise SearchError(
                f"`{name}` needs lung masks to {what}, but got {name}={value} on a dataset without any and "
                "--lung-model none; leave --lung-model at auto (the packaged segmenter), pass a segmenter file, "
                "or drop the constraint."
            )
    weight = space.focus_weight
    if weight.high > 0 and no_lungs:
        # On by default, so not an error: with no lungs anywhere the penalty would ask nothing.
        _logger.warning(
            f"focus_weight={_shown(weight)} needs lung masks, but the dataset has none and --lung-model is none: "
            "trials train without the focus penalty (focus_weight = 0)."
        )
        return replace(space, focus_weight=Range(0.0, 0.0))
    return space


def _shown(r: Range) -> str:
    return f"{r.low:g}" if r.low == r.high else f"[{r.low:g}, {r.high:g}]"


def _warm_caches(manifest: Manifest, space: SearchSpace, cache_dir: Path, artifacts: str) -> None:
    """Decode every image once here, so workers start by mapping the cache, not racing to fill it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not is_s3(artifacts):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    (cache_dir / f"manifest-{manifest.fingerprint}.json").write_text(manifest.to_json())
    load_images(manifest, space.training.image_size, crop=space.training.crop, cache_dir=cache_dir, progress=True)
