"""``cxr-search COMMAND [ARGS]``: one entry point for every command (``python -m search.COMMAND``
keeps working)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["COMMANDS", "main"]

# Imported only when chosen: `cxr-search launch` must not load what `cxr-search predict` needs.
COMMANDS: dict[str, tuple[str, str]] = {
    "launch": ("search.launch", "run a model search (creates or resumes a study)"),
    "worker": ("search.worker", "join a study from another machine and run its trials"),
    "export": ("search.export", "package the best model (ensemble, trial or refit) with its card"),
    "evaluate": ("search.evaluate", "measure a trial once on the test split"),
    "predict": ("search.predict", "classify X-rays with an exported model"),
    "store": ("search.store.__main__", "results database maintenance (upgrade)"),
    "inspect": ("cxrdata.inspect", "check a dataset: classes, splits, duplicates, bad files"),
    "lungs": ("cxrdata.lungs", "train or check the lung segmenter"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: cxr-search COMMAND [ARGS]  (cxr-search COMMAND --help for its flags)\n\ncommands:\n" + "\n".join(
        lines
    )


def _command(name: str) -> Callable[[Sequence[str]], int]:
    module = importlib.import_module(COMMANDS[name][0])
    entry: Callable[[Sequence[str]], int] = module.main
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        from cxrdata import did_you_mean

        print(
            f"error: the command must be one of {', '.join(COMMANDS)}, but got {name!r}.{did_you_mean(name, COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    return _command(name)(rest)


if __name__ == "__main__":
    sys.exit(main())
