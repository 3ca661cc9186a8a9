"""``python -m search.launch``: parse, prepare, run, summarise."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from cxrdata import DatasetError
from search._errors import SearchError
from search._settings import check_settings, settings
from search._study import study_ranking
from search.launch._args import parse_args
from search.launch._plan import prepare
from search.launch._summary import feasibility_line, top_table
from search.launch._supervise import run_tuner, run_workers
from search.store import MIN_SPECIFICITY, ResultStore, mask_url

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()  # before the parser: --storage's default is a setting
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
    ranking = study_ranking(plan.space)
    # With a constraint every completed trial is counted; else the top five are all it shows.
    completed = store.ranked(plan.study, limit=None if ranking.constrained else 5, ranking=ranking)
    rows = completed[:5]
    target = plan.space.training.target
    constraint = ""
    if ranking.constrained:
        constraint = f"; those that miss {ranking.constraint_text(' or ')} (or are unmeasured) after all others"
    print(
        f"\nWall time {time.perf_counter() - started:.0f}s. Top trials (validation split; COVID threshold chosen "
        f"for {target.describe()}, ranked by the {'sensitivity' if target.kind == 'specificity' else 'specificity'} "
        f"it gives; those below argmax COVID specificity {MIN_SPECIFICITY:.2f} after the others{constraint}):"
    )
    print(top_table(rows) if rows else "  no completed trial yet")
    if ranking.constrained:
        print(feasibility_line(completed, ranking))
    if rows:
        storage = "" if plan.storage == settings().storage else " --storage URL"
        print(
            f"\nPackage the best model (an ensemble of the top trials, measured once on the test split):\n"
            f"  python -m search.export --study {plan.study}{storage} --out winner/"
        )
    return status
