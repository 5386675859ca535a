"""SQLite serves one replica: ``serve`` holds an flock beside the SQLite file while it runs,
and a second ``serve`` on the same index is refused with a clear message instead of two
completion detectors, routers and relays racing on a database without row locks.

PostgreSQL needs no such guard: replicas coordinate through its row locks
(:mod:`dicom_node.routing.router`, :mod:`dicom_node.queue.outbox`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy import make_url

from dicom_node.errors import NodeError

__all__ = ["SingleReplicaLock"]


class SingleReplicaLock:
    """``serve``'s hold on a SQLite index (a no-op on any other database)."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        file = url.database if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") else None
        self.path = Path(f"{file}.serve-lock") if file else None
        self._held: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock; NodeError when another serve holds it (the kernel drops an flock
        with its process, so a killed serve never leaves a stale one)."""
        if self.path is None or self._held is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open while serve runs: the flock lives with it
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise NodeError(
                f"another serve ({holder}) runs on the SQLite index {self.path.with_suffix('')}: SQLite serves one "
                "replica. For several replicas, give them one PostgreSQL database_url"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._held = handle

    def release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing the file drops the flock
            self._held = None
