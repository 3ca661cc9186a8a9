"""The cxr-search entry point: every command reachable, unknown ones named."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import COMMANDS, main


def test_without_a_command_it_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in COMMANDS)


def test_an_unknown_command_gets_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lanch", "--trials", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the command must be one of launch, worker, export, evaluate, predict, store, inspect, lungs, "
        "but got 'lanch'. Did you mean 'launch'?"
    )


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "store"])
def test_every_command_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["cxr-search", "cxr-leaderboard"])
def test_the_installed_scripts_run(script: str) -> None:
    path = shutil.which(script, path=str(Path(sys.executable).parent))
    assert path, f"{script} must be installed beside {sys.executable}"
    done = subprocess.run([path, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "usage:" in done.stdout
