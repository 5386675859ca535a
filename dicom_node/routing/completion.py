"""Completion detection: a study is complete after a quiet period with no new instances.

The detector only writes ``completed_at`` and a CompletionEvent row (the outbox); the router
consumes events, so a crash between the two loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from dicom_node.config import CompletionSettings
from dicom_node.store.index import Index

__all__ = ["CompletionDetector"]

log = logging.getLogger(__name__)


class CompletionDetector:
    """Polls the index every ``poll_interval_s`` and completes quiet studies."""

    def __init__(self, index: Index, settings: CompletionSettings, on_complete: Callable[[], None] = lambda: None) -> None:
        self.index = index
        self.settings = settings
        self.on_complete = on_complete
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="completion", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check_once(self) -> list[str]:
        completed = self.index.complete_due_studies(self.settings.quiet_period_s)
        if completed:
            self.on_complete()
        return completed

    def _run(self) -> None:
        while not self._stop.wait(self.settings.poll_interval_s):
            try:
                self.check_once()
            except Exception:  # database briefly unavailable: try again next tick
                log.exception("completion check failed")
