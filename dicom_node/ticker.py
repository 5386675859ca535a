"""A background round that repeats: the shape of the node's completion detector, router and
outbox relay, each a daemon thread in the node process."""

from __future__ import annotations

import abc
import logging
import threading

__all__ = ["Ticker"]

log = logging.getLogger(__name__)


class Ticker(abc.ABC):
    """Runs :meth:`tick` at once, then again every :meth:`interval` seconds or as soon as
    :meth:`wake` is called. A round that raises is logged and the next one runs as usual: the
    database or broker being away for a moment must not stop the thread for good."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abc.abstractmethod
    def tick(self) -> None: ...

    @abc.abstractmethod
    def interval(self) -> float: ...

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def wake(self) -> None:
        """Run the next round now rather than at the next tick."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("%s round failed", self.name)
            self._wake.wait(self.interval())
            self._wake.clear()
