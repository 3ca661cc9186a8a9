"""``python -m search.export --study NAME --out DIR``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cxrdata import DatasetError
from search._errors import SearchError
from search._settings import check_settings
from search.export._card import fmt as _f
from search.export._card import with_ci as _with_ci
from search.export._export import export
from search.export._files import FORMATS
from search.metrics import OperatingTarget
from search.store import add_storage_argument

__all__ = ["main"]


def _ids(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"`--members` must be comma-separated trial numbers, but got {text!r}"
        ) from None


def _external(text: str) -> tuple[str, str | None]:
    from search._external import parse_external

    try:
        return parse_external(text)
    except SearchError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


def main(argv: Sequence[str] | None = None) -> int:
    check_settings()
    parser = argparse.ArgumentParser(
        prog="python -m search.export", description="Package the winning model, ready to serve."
    )
    parser.add_argument("--study", required=True)
    parser.add_argument(
        "--out", required=True, type=Path, help="a new or empty folder; it appears only once the export is complete"
    )
    choice = parser.add_argument_group("what to export (default: an ensemble selected from the top 10 saved trials)")
    choice.add_argument("--trial", type=int, help="one trial, by number")
    choice.add_argument(
        "--ensemble", type=int, help="select the ensemble from the top K trials (1: the top trial alone)"
    )
    choice.add_argument("--members", type=_ids, help="select the ensemble from these trials, e.g. 3,8,12")
    parser.add_argument("--refit", action="store_true", help="train each member again on train+validation first")
    add_storage_argument(parser)
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated: {', '.join(FORMATS)}")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--threshold", type=float, help="COVID decision threshold on its probability")
    target.add_argument("--target-specificity", type=float, help="choose the threshold on validation for this")
    target.add_argument("--target-sensitivity", type=float, help="... or for this (default: the study's target)")
    parser.add_argument("--data", help="dataset path on this machine (default: the study's)")
    parser.add_argument(
        "--force", action="store_true", help="replace a folder that already holds files (its old files are removed)"
    )
    parser.add_argument(
        "--external",
        metavar="PATH[:NAME]",
        type=_external,
        action="append",
        default=[],
        help="after export, measure the model once on this other labelled dataset, into the card (repeatable; "
        "NAME defaults to the folder's name)",
    )
    args = parser.parse_args(argv)
    try:
        wanted = None
        if args.target_specificity is not None:
            wanted = OperatingTarget("specificity", args.target_specificity)
        elif args.target_sensitivity is not None:
            wanted = OperatingTarget("sensitivity", args.target_sensitivity)
        result = export(
            args.storage, args.study, args.out, trial=args.trial, ensemble=args.ensemble, members=args.members,
            refit=args.refit, formats=[f.strip() for f in args.formats.split(",")], data=args.data,
            threshold=args.threshold, target=wanted, force=args.force, external=args.external,
        )  # fmt: skip
    except (SearchError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a target outside (0, 1)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    card = result.card
    members = ", ".join(f"trial {m['trial']} ({m['backbone']}, weight {m['weight']:.2f})" for m in card["members"])
    print(f"Exported {card['kind']}{' (refit)' if card['refit'] else ''}: {members} to {result.folder}")
    print(f"Decision: {card['decision']['rule']}")
    op = card["test"]["at_threshold"]
    if op is not None:
        sensitivity = _with_ci(op["sensitivity"], op["sensitivity_ci"])
        specificity = _with_ci(op["specificity"], op["specificity_ci"])
        print(
            f"Test split ({card['test']['n']} images, measured once): COVID sensitivity {sensitivity}, "
            f"specificity {specificity}, COVID AUC {_f(card['test']['covid_auc'])}"
        )
    for e in card.get("external_validation", []):
        op = e["at_threshold"] or {}
        sensitivity = (
            "undefined" if op.get("sensitivity") is None else _with_ci(op["sensitivity"], op["sensitivity_ci"])
        )
        specificity = (
            "undefined" if op.get("specificity") is None else _with_ci(op["specificity"], op["specificity_ci"])
        )
        note = f" ({e['note']})" if e.get("note") else ""
        auc = "undefined" if e["covid_auc"] is None else _f(e["covid_auc"])
        print(
            f"External set '{e['name']}' ({e['n']} images, measured once, never used to choose): COVID sensitivity "
            f"{sensitivity}, specificity {specificity}, COVID AUC {auc}{note}"
        )
    print(f"Checked after reloading: {card['parity']}")
    return 0
