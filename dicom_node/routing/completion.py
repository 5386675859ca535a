"""Completion detection: a study is complete after a quiet period with no new instances.

The detector only writes ``completed_at`` and a CompletionEvent row (the outbox); the router
consumes events, so a crash between the two loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from dicom_node.config import CompletionSettings
from dicom_node.store.index import Index
from dicom_node.ticker import Ticker

__all__ = ["CompletionDetector"]


class CompletionDetector(Ticker):
    """Polls the index every ``poll_interval_s`` and completes quiet studies."""

    def __init__(self, index: Index, settings: CompletionSettings, on_complete: Callable[[], None] = lambda: None) -> None:
        self.index = index
        self.settings = settings
        self.on_complete = on_complete
        super().__init__("completion")

    def tick(self) -> None:
        self.check_once()

    def interval(self) -> float:
        return self.settings.poll_interval_s

    def check_once(self) -> list[str]:
        completed = self.index.complete_due_studies(self.settings.quiet_period_s)
        if completed:
            self.on_complete()
        return completed
