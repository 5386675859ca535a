"""The Blindfold that keeps pynetdicom's DUL thread from reading while our code reads: it
reports nothing to read, forwards the rest, and with ``park_s`` holds the polling thread until
released, so the DUL does not spin beside the thread doing the work."""

from __future__ import annotations

import threading

from dicom_node.net import Blindfold


class Wrapped:
    ready = True

    def send(self, data: bytes) -> str:
        return f"sent {len(data)}"


def test_nothing_is_ready_and_everything_else_reaches_the_socket():
    blindfold = Blindfold(Wrapped())
    assert blindfold.ready is False
    assert not blindfold.handed_over.is_set()
    assert blindfold.ready is False
    assert blindfold.handed_over.is_set()  # polled twice: the DUL is no longer inside a read
    assert blindfold.send(b"abc") == "sent 3"


def test_a_parked_poll_waits_for_release():
    blindfold = Blindfold(Wrapped(), park_s=60)
    assert blindfold.ready is False  # the first poll is not held: handed_over needs a second
    polled = threading.Event()

    def dul() -> None:
        assert blindfold.ready is False
        polled.set()

    thread = threading.Thread(target=dul)
    thread.start()
    assert blindfold.handed_over.wait(10)
    assert not polled.wait(0.2), "the second poll should be parked"
    blindfold.release()
    assert polled.wait(10), "release() should let the poll return"
    thread.join()
    assert blindfold.ready is False  # never held again


def test_a_parked_poll_returns_after_park_s():
    blindfold = Blindfold(Wrapped(), park_s=0.01)
    assert blindfold.ready is False
    assert blindfold.ready is False  # returns on its own: the DUL still sends what is queued
