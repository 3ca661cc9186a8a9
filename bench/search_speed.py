"""Trials per hour at a fixed wall-clock budget: this project against the usual ways.

    python -m bench.search_speed [--budget 900] [--contenders project,plain,kerastuner] [--out DIR]
        [--space bench/space.toml]

Each contender runs in its own process on the same data (the shared sample), the same split,
the same search space (bench/space.toml unless ``--space`` names another) and the same network
(search.model.build_model), and is stopped when the budget is spent; only trials finished
within the budget count.

- ``project``: ``python -m search.launch`` (decode-once cache, feature cache, pruning, early
  stopping, one worker).
- ``project-kerastuner``: ``python -m search.launch --engine keras-tuner --tuner hyperband``:
  KerasTuner's Hyperband proposing, this project's trial runner training.
- ``plain``: the usual Optuna + Keras loop, as in Optuna's Keras example and the papers'
  notebooks: TPE, no pruner; every trial decodes the PNGs from disk in a tf.data pipeline,
  rebuilds the model and runs the full frozen backbone on every image in every one of
  ``max_epochs`` epochs.
- ``kerastuner``: KerasTuner's ``Hyperband`` (max_epochs from the space, factor 3) over the
  same space, with the same per-epoch decoding pipeline; ``tuner.search`` as its guide shows.

Prints a table: trials finished, trials per hour, best validation COVID sensitivity (with
that trial's accuracy), best validation accuracy, best validation loss.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))
SPACE = REPO / "bench" / "space.toml"
MIN_ACCURACY = 0.8
CONTENDERS = ("project", "project-kerastuner", "plain", "kerastuner")


# --- the usual way, shared by "plain" and "kerastuner" -------------------------------------------


def _usual_data(data: Path, image_size: int, batch_size: int) -> tuple[Any, Any, Any, list[str]]:
    """tf.data pipelines that decode every PNG from disk in every epoch, over our split."""
    import numpy as np
    import tensorflow as tf

    from cxrdata import get_scheme, make_split, scan

    manifest = scan(data)
    split = make_split(manifest, get_scheme("three"), seed=0)
    paths = np.array([str(Path(manifest.root) / e.path) for e in manifest.entries])

    def dataset(indices: Any, shuffle: bool) -> Any:
        ds = tf.data.Dataset.from_tensor_slices((paths[indices], split.labels[indices]))
        if shuffle:
            ds = ds.shuffle(len(indices), seed=0, reshuffle_each_iteration=True)

        def load(path: Any, label: Any) -> Any:
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size)), label

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)

    val = split.indices["val"]
    return dataset(split.indices["train"], True), dataset(val, False), split.labels[val], list(split.scheme.class_names)


def _val_scores(model: Any, val: Any, labels: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, recall_score

    predicted = model.predict(val, verbose=0).argmax(axis=1)
    return {
        "covid_sensitivity": float(recall_score(labels == 0, predicted == 0)),  # COVID is label 0
        "accuracy": float(accuracy_score(labels, predicted)),
    }


def plain_trial(config: Any, train: Any, val: Any, labels: Any, num_classes: int) -> dict[str, float]:
    """One trial of the usual loop: rebuild, fit for ``max_epochs`` on decoded images, score."""
    import keras

    from search.model import build_model

    keras.backend.clear_session()
    model = build_model(config, num_classes).model
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(train, validation_data=val, epochs=config.max_epochs, verbose=0)
    scores = _val_scores(model, val, labels)
    return {**scores, "epochs": len(history.history["val_loss"]), "val_loss": float(min(history.history["val_loss"]))}


def run_plain(out: Path, data: Path, weights: str, space_file: Path) -> None:
    import optuna

    from search.space import load_space

    space = load_space(space_file)
    train, val, labels, classes = _usual_data(data, space.training.image_size, space.training.batch_size)
    study = optuna.create_study(study_name="plain", storage=f"sqlite:///{out / 'plain.db'}", direction="minimize")

    def objective(trial: optuna.Trial) -> float:
        config = space.suggest(trial, weights=weights, seed=0)
        scores = plain_trial(config, train, val, labels, len(classes))
        for name in ("covid_sensitivity", "accuracy", "epochs"):
            trial.set_user_attr(name, scores[name])
        return scores["val_loss"]

    study.optimize(objective)


def run_kerastuner(out: Path, data: Path, weights: str, space_file: Path) -> None:
    import keras
    import keras_tuner as kt

    from search.kerastuner import HyperParametersTrial
    from search.model import build_model
    from search.space import load_space

    space = load_space(space_file)
    train, val, labels, classes = _usual_data(data, space.training.image_size, space.training.batch_size)
    log = out / "kerastuner.jsonl"

    def build(hp: kt.HyperParameters) -> keras.Model:
        config = space.suggest(HyperParametersTrial(hp, 0), weights=weights, seed=0)  # type: ignore[arg-type]
        model = build_model(config, len(classes)).model
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    class Record(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            scores = _val_scores(self.model, val, labels)
            with log.open("a") as handle:
                handle.write(json.dumps({"finished": time.time(), **scores}) + "\n")

    tuner = kt.Hyperband(
        build, objective="val_loss", max_epochs=space.training.max_epochs, factor=3, hyperband_iterations=100,
        seed=0, directory=str(out / "kt"), project_name="hyperband",
    )  # fmt: skip
    tuner.search(train, validation_data=val, callbacks=[Record()], verbose=0)


# --- the orchestration -------------------------------------------------------------------------


def _command(contender: str, out: Path, data: Path, weights: str, budget: int, space: Path) -> list[str]:
    if contender == "project-kerastuner":
        project = _command("project", out, data, weights, budget, space)
        return [*project, "--engine", "keras-tuner", "--tuner", "hyperband"]
    if contender == "project":
        return [
            sys.executable, "-m", "search.launch", "--trials", "100000", "--timeout", str(budget),
            "--config", str(space), "--data", str(data), "--weights", weights,
            "--storage", f"sqlite:///{out / 'project.db'}", "--keep-models", "0",
        ]  # fmt: skip
    return [sys.executable, "-m", "bench.search_speed", "--run", contender, "--out", str(out), "--weights", weights,
            "--data", str(data), "--space", str(space)]  # fmt: skip


def _finished_trials(contender: str, out: Path, deadline: float) -> list[dict[str, Any]]:
    """Trials finished before the deadline: state, val loss, COVID sensitivity, accuracy."""
    if contender == "kerastuner":
        lines = (out / "kerastuner.jsonl").read_text().splitlines() if (out / "kerastuner.jsonl").exists() else []
        rows = [json.loads(line) for line in lines]
        # KerasTuner's scores are not tied to our log lines: its best val_loss is reported apart.
        scores = [json.loads(p.read_text()).get("score") for p in (out / "kt" / "hyperband").glob("trial_*/trial.json")]
        losses = [score for score in scores if score is not None]
        for row in rows:
            row["state"], row["val_loss"] = "COMPLETE", None
        done = [r for r in rows if r["finished"] <= deadline]
        if done and losses:
            done[0]["best_val_loss_overall"] = min(losses)
        return done
    if contender == "project-kerastuner":
        from search.store import ResultStore

        store = ResultStore(f"sqlite:///{out / 'project.db'}")
        return [
            {
                "state": r.state,
                "val_loss": r.loss,
                "covid_sensitivity": r.covid_sensitivity,
                "accuracy": r.accuracy,
                "backbone": r.backbone,
                "freeze_depth": r.freeze_depth,
                "seconds": r.wall_time_s,
            }
            for r in store.trials("cxr-search")
            if r.state != "FAIL" and _stamp(r.created_at) <= deadline
        ]
    import optuna

    name = "cxr-search" if contender == "project" else "plain"
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / f'{contender}.db'}")
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None or t.datetime_complete.timestamp() > deadline:
            continue
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        rows.append(
            {
                "state": t.state.name,
                "val_loss": t.value if t.value is not None else min(t.intermediate_values.values(), default=None),
                "covid_sensitivity": t.user_attrs.get("covid_sensitivity"),
                "accuracy": t.user_attrs.get("accuracy"),
                "backbone": t.params.get("backbone"),
                "freeze_depth": t.params.get("freeze_depth"),
                "seconds": t.duration.total_seconds() if t.duration else None,
            }
        )
    return rows


def _stamp(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()  # SQLite returns naive UTC


def _summary(contender: str, rows: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    complete = [r for r in rows if r["state"] == "COMPLETE" and r.get("covid_sensitivity") is not None]
    best = max(complete, key=lambda r: (r["covid_sensitivity"], r["accuracy"]), default=None)
    # A constant "everything is COVID" model has sensitivity 1 at accuracy 1/3: not a winner.
    sound = [r for r in complete if r["accuracy"] >= MIN_ACCURACY]
    best_sound = max(sound, key=lambda r: (r["covid_sensitivity"], r["accuracy"]), default=None)
    losses = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    losses += [r["best_val_loss_overall"] for r in rows if "best_val_loss_overall" in r]
    frozen = [r for r in rows if r.get("freeze_depth") == 1.0]
    timed = [r for r in rows if r.get("freeze_depth") is not None and r.get("seconds") is not None]
    seconds = {whole: [r["seconds"] for r in timed if (r["freeze_depth"] == 1.0) == whole] for whole in (True, False)}
    mean = {whole: (sum(v) / len(v) if v else None) for whole, v in seconds.items()}
    frozen_s, partial_s = mean[True], mean[False]
    return {
        "contender": contender,
        "trials": len(rows),
        "complete": len(complete),
        "trials_per_hour": len(rows) * 3600 / budget,
        "frozen_share": (len(frozen) / len(rows)) if rows and "freeze_depth" in rows[0] else None,
        "best_sens": None if best is None else best["covid_sensitivity"],
        "its_acc": None if best is None else best["accuracy"],
        "best_sound_sens": None if best_sound is None else best_sound["covid_sensitivity"],
        "its_sound_acc": None if best_sound is None else best_sound["accuracy"],
        "best_acc": max((r["accuracy"] for r in complete), default=None),
        "best_val_loss": min(losses, default=None),
        "mean_s_frozen": frozen_s,
        "mean_s_partial": partial_s,
        # Trials per hour of an exact half-and-half mix, from the mean trial times (no start-up costs).
        "half_mix_per_hour": 7200 / (frozen_s + partial_s) if frozen_s and partial_s else None,
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _cells(s: dict[str, Any]) -> list[str]:
    return [
        s["contender"],
        str(s["trials"]),
        str(s["complete"]),
        f"{s['trials_per_hour']:.1f}",
        _fmt(s["frozen_share"], 2),
        _fmt(s["best_sens"]),
        _fmt(s["its_acc"]),
        _fmt(s["best_sound_sens"]),
        _fmt(s["its_sound_acc"]),
        _fmt(s["best_acc"]),
        _fmt(s["best_val_loss"], 4),
        _fmt(s["mean_s_frozen"], 1),
        _fmt(s["mean_s_partial"], 1),
        _fmt(s["half_mix_per_hour"], 0),
    ]


def _table(summaries: list[dict[str, Any]], budget: int) -> str:
    header = ["contender", "trials", "complete", "trials/hour", "frozen share", "best COVID sens", "its accuracy",
              f"best COVID sens, acc >= {MIN_ACCURACY}", "its accuracy",
              "best accuracy", "best val_loss", "mean s (frozen)", "mean s (partly frozen)",
              "trials/hour at 50/50"]  # fmt: skip
    lines = [header] + [_cells(s) for s in summaries]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    text = [f"budget {budget} s per contender"]
    text += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(text)


def _race(contender: str, out: Path, data: Path, weights: str, budget: int, space: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = (out / f"{contender}.log").open("w")
    started = time.time()
    proc = subprocess.Popen(
        _command(contender, out, data, weights, budget, space), cwd=out, env=env, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (out / "started").write_text(str(started))
    return _summarize(contender, out, budget)


def _summarize(contender: str, out: Path, budget: int) -> dict[str, Any]:
    deadline = float((out / "started").read_text()) + budget
    summary = _summary(contender, _finished_trials(contender, out, deadline), budget)
    print(json.dumps(summary), file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--budget", type=int, default=900, help="seconds per contender")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--data", type=Path, default=SHARED / "cxr" / "radiography")
    parser.add_argument("--weights", default=str(SHARED / "weights"))
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--space", type=Path, default=SPACE, help="search space file (default: %(default)s)")
    parser.add_argument("--run", choices=("plain", "kerastuner"), help=argparse.SUPPRESS)  # a contender's process
    parser.add_argument("--summarize", action="store_true", help="only read the results already in --out")
    args = parser.parse_args(argv)
    if args.run == "plain":
        return run_plain(args.out, args.data, args.weights, args.space)
    if args.run == "kerastuner":
        return run_kerastuner(args.out, args.data, args.weights, args.space)
    space = args.space.resolve()  # the contenders run in their own folders
    root = args.out or Path(tempfile.mkdtemp(prefix="cxr-speed-"))
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if args.summarize:
        summaries = [_summarize(c, root / c, args.budget) for c in names]
    else:
        summaries = [_race(c, root / c, args.data, args.weights, args.budget, space) for c in names]
    print(_table(summaries, args.budget))


if __name__ == "__main__":
    main()
