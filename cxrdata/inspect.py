"""``python -m cxrdata.inspect PATH``: a dataset report in the terminal.

Exits with status 1 only when the dataset is unusable (no such folder, no class folder, or
the scheme's classes are missing); excluded files and duplicates are reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence

from cxrdata._classes import CLASSES, SCHEMES, did_you_mean, get_scheme
from cxrdata._duplicates import find_duplicates
from cxrdata._errors import DatasetError
from cxrdata._layout import printable
from cxrdata._leakage import LeakReport, leak_report
from cxrdata._manifest import Manifest, scan
from cxrdata._split import SPLITS, Split, make_split

__all__ = ["main", "render_report"]


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"fractions must be three numbers like 0.7,0.2,0.1, but got {text!r}"
        ) from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"fractions must be three numbers like 0.7,0.2,0.1, but got {text!r}")
    return parts[0], parts[1], parts[2]


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> list[str]:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(r[i].split(" ")[0].isdigit() for r in cells[1:]) for i in range(len(header))]
    lines = [
        "  "
        + "  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines


def _classes_section(manifest: Manifest) -> list[str]:
    counts = manifest.counts()
    masks = Counter(e.label for e in manifest.entries if e.mask)
    rows = [
        (
            label,
            manifest.class_folders[label],
            counts.get(label, 0),
            f"{masks[label]} ({100 * masks[label] / max(counts.get(label, 0), 1):.0f}%)",
        )
        for label in CLASSES
        if label in manifest.class_folders
    ]
    lines = ["Classes", *_table(rows, ("class", "folder", "images", "lung masks"))]
    for folder in manifest.unknown_folders:
        lines.append(f"  Not a class folder, left out: '{printable(folder)}'.{did_you_mean(folder, CLASSES)}")
    return lines


def _images_section(manifest: Manifest, show: int) -> list[str]:
    sizes = Counter(f"{e.width}x{e.height}" for e in manifest.entries)
    modes = Counter(e.mode for e in manifest.entries)
    lines = [
        "Images",
        "  sizes: "
        + ", ".join(f"{s} x{n}" for s, n in sizes.most_common(5))
        + (f" (+{len(sizes) - 5} more)" if len(sizes) > 5 else ""),
        "  modes: " + ", ".join(f"{m} x{n}" for m, n in modes.most_common()),
    ]
    if manifest.excluded:
        lines.append(f"  excluded: {len(manifest.excluded)} file(s)")
        lines += [f"    {printable(x.path)}: {x.reason}" for x in manifest.excluded[:show]]
        if len(manifest.excluded) > show:
            lines.append(f"    ... and {len(manifest.excluded) - show} more (use --show)")
    else:
        lines.append("  excluded: none")
    return lines


def _split_section(split: Split) -> list[str]:
    counts = split.counts()
    names = split.scheme.class_names
    rows = [(name, *[counts[name][c] for c in names], sum(counts[name].values())) for name in SPLITS]
    fr = "/".join(f"{100 * f:g}" for f in split.fractions)
    lines = [f"Split ({split.scheme.name} scheme, {fr}, seed {split.seed}, fingerprint {split.fingerprint})"]
    lines += _table(rows, ("split", *names, "total"))
    lines += [f"  note: {n}" for n in split.notes]
    return lines


def _leak_section(manifest: Manifest, split: Split, report: LeakReport, show: int) -> list[str]:
    kinds = Counter(g.kind for g in split.duplicates)
    lines = [
        "Duplicates and leakage",
        f"  duplicate groups: {report.duplicate_groups} ({kinds['exact']} exact, {kinds['near']} near), "
        f"{report.duplicate_images} images; each group is kept in one split",
    ]
    for group in split.duplicates[:show]:
        side = split.side_of()[group.members[0]] or "unused"
        lines.append(f"    {group.kind} [{side}]: " + ", ".join(manifest.entries[m].path for m in group.members))
    if len(split.duplicates) > show:
        lines.append(f"    ... and {len(split.duplicates) - show} more (use --show)")
    lines.append(f"  duplicates across splits: {len(report.cross_split_duplicates)}")
    if report.conflicting_labels:
        lines.append(f"  WARNING: {len(report.conflicting_labels)} duplicate group(s) carry different labels:")
        lines += ["    " + ", ".join(g) for g in report.conflicting_labels[:show]]
    crossing = len(report.cross_split_patients)
    lines.append(f"  patients known: {report.patients_known}; patients on more than one split: {crossing}")
    for source, label in report.confounded_sources.items():
        lines.append(
            f"  WARNING: source '{source}' supplies only {label} images: "
            "a model may learn the source instead of the disease."
        )
    return lines


def render_report(manifest: Manifest, split: Split, report: LeakReport, *, show: int = 10) -> str:
    """The whole report as text."""
    head = [f"Dataset {manifest.root}", f"  layout: {manifest.layout}; fingerprint {manifest.fingerprint}"]
    head += [f"  note: {n}" for n in manifest.notes]
    sections = [
        head,
        _classes_section(manifest),
        _images_section(manifest, show),
        _split_section(split),
        _leak_section(manifest, split, report, show),
    ]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def _as_json(manifest: Manifest, split: Split, report: LeakReport) -> str:
    return json.dumps(
        {
            "root": str(manifest.root),
            "layout": manifest.layout,
            "fingerprint": manifest.fingerprint,
            "counts": manifest.counts(),
            "masks": sum(1 for e in manifest.entries if e.mask),
            "excluded": [{"path": printable(x.path), "reason": x.reason} for x in manifest.excluded],
            "unknown_folders": [printable(f) for f in manifest.unknown_folders],
            "split": {"scheme": split.scheme.name, "fingerprint": split.fingerprint, "counts": split.counts()},
            "duplicates": [[manifest.entries[m].path for m in g.members] for g in split.duplicates],
            "cross_split_duplicates": len(report.cross_split_duplicates),
            "cross_split_patients": list(report.cross_split_patients),
            "confounded_sources": report.confounded_sources,
        },
        indent=2,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cxrdata.inspect", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("path", help="dataset root holding one folder per class")
    parser.add_argument("--scheme", default="three", help=f"class scheme: {', '.join(SCHEMES)} (default: three)")
    parser.add_argument(
        "--metadata", help="metadata CSV (path,label,patient_id,source); default: ROOT/metadata.csv if present"
    )
    parser.add_argument(
        "--fractions", type=_fractions, default=(0.7, 0.2, 0.1), help="train,val,test (default: 0.7,0.2,0.1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    parser.add_argument("--show", type=int, default=10, help="rows to list per section (default: 10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        scheme = get_scheme(args.scheme)
        manifest = scan(args.path, metadata=args.metadata, progress=sys.stderr.isatty())
        split = make_split(
            manifest, scheme, fractions=args.fractions, seed=args.seed, duplicates=find_duplicates(manifest.entries)
        )
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = leak_report(manifest, split)
    print(
        _as_json(manifest, split, report)
        if args.json
        else render_report(manifest, split, report, show=max(0, args.show)),
        end="",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
