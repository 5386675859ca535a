"""Batched index writes off the C-STORE hot path.

The SCP acknowledges an instance once its file is durable; the index row follows within
``max_delay_s`` in a batch. A crash in between loses no instance: reconciliation on start-up
indexes every stored file that has no row.

A batch costs a few milliseconds of CPU whatever its size plus a little per record, all of it
holding the receiving process's GIL, so batches are large (up to ``max_delay_s`` of arrivals);
:meth:`IndexWriter.flush` writes what is queued at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from dicom_node.store.header import InstanceRecord
from dicom_node.store.index import Index

__all__ = ["IndexWriter"]

log = logging.getLogger(__name__)


class IndexWriter:
    """A background thread that writes InstanceRecords to the index in batches."""

    def __init__(self, index: Index, max_batch: int = 1000, max_delay_s: float = 0.2) -> None:
        self.index = index
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._queue: queue.Queue[InstanceRecord] = queue.Queue()
        self._now = threading.Event()  # write what is queued without waiting out max_delay_s
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="index-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, record: InstanceRecord) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(record)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything put so far is in the index; False on timeout."""
        self._now.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        self.flush()
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            # A batch gathers while this thread sleeps: woken for every record instead, it
            # took the GIL from the receiving threads a thousand times a second.
            if self._queue.qsize() < self.max_batch - 1:
                self._now.wait(self.max_delay_s)
            self._now.clear()
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[InstanceRecord]) -> None:
        delay = 0.1
        while True:
            try:
                self.index.add_instances(batch)
                break
            except Exception:  # database down or locked: keep the batch, the files are safe
                log.exception("index write of %d instances failed; retrying in %.1fs", len(batch), delay)
                if self._stop.wait(delay):
                    return  # shutting down: reconciliation on next start indexes these files
                delay = min(delay * 2, 5.0)
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()
