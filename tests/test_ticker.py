"""The repeating background round behind the completion detector, router and outbox relay."""

from __future__ import annotations

import logging
import threading

import pytest

from dicom_node.ticker import Ticker


class Rounds(Ticker):
    """Counts rounds; the first one fails as a database that is briefly away would."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.rounds = 0
        self.second = threading.Event()
        super().__init__("test-rounds")

    def tick(self) -> None:
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("database away")
        self.second.set()

    def interval(self) -> float:
        return self.interval_s


def test_a_failed_round_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    ticker = Rounds(interval_s=0.01)
    with caplog.at_level(logging.ERROR):
        ticker.start()
        try:
            assert ticker.second.wait(5)
        finally:
            ticker.stop()
    assert "test-rounds round failed" in caplog.text
    assert not ticker._thread.is_alive()


def test_wake_runs_the_next_round_at_once() -> None:
    ticker = Rounds(interval_s=3600)  # only a wake can bring the second round
    ticker.start()
    try:
        ticker.wake()
        assert ticker.second.wait(5)
    finally:
        ticker.stop()
