"""The local audit trail: one JSON object per line, appended, rotated by size.

Receiver processes, workers and the web face append to the same file, so each line goes in
one ``write`` on an ``O_APPEND`` descriptor (whole lines, never interleaved), and rotation
happens under an exclusive ``flock`` on a lock file beside it: whoever rotates renames
``audit.jsonl`` → ``audit.jsonl.1`` … ``.N`` (the oldest dropped); the file is opened per
line, so no writer keeps appending to a renamed one. logging's RotatingFileHandler rotates per process and would
lose lines with several writers.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["JsonLinesTrail"]


class JsonLinesTrail:
    """Append-only JSON lines at ``path`` (mode 0600: the trail names patients' studies)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = path.with_name(path.name + ".lock")

    def write(self, record: dict[str, Any]) -> None:
        line = (
            json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        ).encode("utf-8")
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if (
                    self.path.exists()
                    and self.path.stat().st_size + len(line) > self.max_bytes
                ):
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rotate(self) -> None:
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
