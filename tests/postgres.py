"""A real PostgreSQL server for tests: initdb into a temporary folder, pg_ctl on a loopback port.

Debian's ``postgresql`` package provides the binaries (``.ci/run`` installs it). PostgreSQL
refuses to run as root, so when the tests run as root the server runs as the ``postgres``
user, in a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import free_port, wait_until

__all__ = ["PostgresServer"]


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    assert found, f"PostgreSQL's {name} must be installed (Debian package postgresql)"
    return str(found[-1])


class PostgresServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cxr-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_user: str | None = "postgres" if os.geteuid() == 0 else None
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self.folder.chmod(0o700)

    def _run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, cwd=self.folder)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/cxr"

    def start(self) -> PostgresServer:
        self._run([_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        self._pg_ctl("start")
        self._run([_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "cxr"])
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=200 -c fsync=off"
        self._run(
            [_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", action, *extra]
        )

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._run([_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"], check=False)
        try:  # the server removes its pid file last, once its processes are gone
            wait_until(lambda: not (self.data / "postmaster.pid").exists(), 10, 0.05, what="PostgreSQL stopping")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
