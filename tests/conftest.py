"""Shared fixtures: a real node on a free loopback port, DCMTK runners, polling helper."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
