"""Servers the tests own: Redis and PostgreSQL started from their binaries on free loopback ports
in temporary folders, never whatever happens to listen on 6379 or 5432."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.tools import MISSING_HINT, free_port, tool, wait_for

__all__ = ["PrivatePostgres", "PrivateRedis"]


class PrivateRedis:
    """A redis-server of the test's own on a free port, so a test may stop and restart it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [tool("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        cli = tool("redis-cli")
        wait_for(lambda: subprocess.run([cli, "-p", str(self.port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG", "redis up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _postgres_bin(name: str) -> str:
    """Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<version>/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    return tool(name)


class PrivatePostgres:
    """A PostgreSQL cluster of the session's own: initdb into a temporary folder, trust
    authentication, listening on 127.0.0.1 only, no fsync (the tests need no durability)."""

    def __init__(self) -> None:
        self.port = free_port()
        root = os.geteuid() == 0
        # As root the server runs as another user, who must reach the folder: /tmp, never a
        # tempfile.tempdir a node under test has pointed into its own (private) data folder.
        self.folder = Path(tempfile.mkdtemp(prefix="dicom-node-pg-", dir="/tmp" if root else None))
        self._user: dict[str, Any] = {}
        if root:  # initdb and postgres refuse to run as root
            account = pwd.getpwnam("postgres") if _has_account("postgres") else pwd.getpwnam("nobody")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    @property
    def admin_dsn(self) -> str:
        return f"dbname=postgres user=postgres host=127.0.0.1 port={self.port}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        run = subprocess.run(list(args), capture_output=True, text=True, cwd=self.folder, timeout=120, **self._user)
        if run.returncode != 0:
            pytest.fail(f"{Path(args[0]).name} failed ({MISSING_HINT}):\n{run.stdout}{run.stderr}", pytrace=False)

    def start(self) -> None:
        data = self.folder / "data"
        self._run(_postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off -c full_page_writes=off"
        self._run(_postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            self._run(_postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database, dropped afterwards; its SQLAlchemy URL."""
        name = f"dicom_node_test_{uuid.uuid4().hex[:12]}"
        admin = psycopg2.connect(self.admin_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.close()


def _has_account(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
