"""Shared fixtures: a real node on a free loopback port, DCMTK runners, polling helper."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from dicom_node.config import Settings, load_settings
from dicom_node.receive.scp import NodeServer

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], msg: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; fail with ``msg`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for: {msg}")


def dcmtk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (with TCP_NODELAY) and return the completed process."""
    return subprocess.run(list(args), capture_output=True, text=True, env=DCMTK_ENV, timeout=timeout)


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools {missing}: run .ci/run or apt-get install dcmtk dicom3tools orthanc")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0)


@pytest.fixture
def node_server(settings: Settings) -> Iterator[NodeServer]:
    server = NodeServer(settings, qr=False)
    server.start()
    yield server
    server.stop()


class FakePacs:
    """DCMTK ``storescp`` on a free loopback port, writing what it receives to ``folder``."""

    def __init__(self, folder: Path, ae_title: str = "FAKE_PACS") -> None:
        self.folder = folder
        self.ae_title = ae_title
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        require("storescp")
        self.proc = subprocess.Popen(
            ["storescp", "-aet", self.ae_title, "-od", str(self.folder), "+xa", str(self.port)],
            env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: dcmtk("echoscu", "-aec", self.ae_title, "127.0.0.1", str(self.port)).returncode == 0, "storescp up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def destination(self) -> dict[str, Any]:
        return {"ae_title": self.ae_title, "host": "127.0.0.1", "port": self.port}


@pytest.fixture
def fake_pacs(tmp_path: Path) -> Iterator[FakePacs]:
    pacs = FakePacs(tmp_path / "pacs")
    pacs.start()
    yield pacs
    pacs.stop()


class PrivateRedis:
    """A redis-server of the test's own on a free port, so a test may stop and restart it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server missing: run .ci/run or apt-get install redis-server")
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG", "redis up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def dciodvfy() -> Iterator[Callable[[Path], list[str]]]:
    """Run dicom3tools' dciodvfy; assert no "Error" lines, print and return the warnings."""
    require("dciodvfy")
    tool = "dciodvfy"

    def _check(path: Path) -> list[str]:
        run = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", timeout=60)
        lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error")]
        warnings = [line for line in lines if line.startswith(("Warning", "W:"))]
        for line in warnings:
            print(f"{path.name}: {line}")
        assert not errors, f"dciodvfy {path.name}:\n" + "\n".join(errors)
        return warnings

    yield _check


@pytest.fixture
def dsrdump() -> Callable[[Path], str]:
    """Run DCMTK's dsrdump; it must exit 0 with no error ("E:"/"F:") output; warnings are printed.

    DCMTK warns "The VR checker does not support this Specific Character Set: ISO_IR 192"
    for UTF-8 documents with non-ASCII text: a limit of its checker, not of the file.
    """
    require("dsrdump")
    tool = "dsrdump"

    def _dump(path: Path) -> str:
        run = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", timeout=60)
        assert run.returncode == 0, run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        for line in lines:
            print(f"{path.name}: dsrdump {line}")
        assert all(line.startswith("W:") for line in lines), run.stderr
        return run.stdout

    return _dump


PG_ADMIN = "dbname=postgres user=postgres host=127.0.0.1"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the loopback PostgreSQL (as .ci/run starts it); its URL."""
    name = f"dicom_node_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(PG_ADMIN)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required (run .ci/run): {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
