"""Socket and reactor tuning pynetdicom leaves to us.

pynetdicom does not set TCP_NODELAY. A DIMSE exchange is a few small writes per message
(command PDU, dataset PDU, response), which Nagle's algorithm holds back until the peer's
delayed ACK — some 40 ms per instance on loopback. Every association the node makes or
accepts binds :func:`no_delay` to EVT_CONN_OPEN.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event

__all__ = ["no_delay", "NO_DELAY_HANDLER", "pause_reactor", "resume_reactor", "let_peer_in", "Blindfold"]


def no_delay(event: Event) -> None:
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket is not None else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NO_DELAY_HANDLER = (evt.EVT_CONN_OPEN, no_delay)


class _Checkpoint(threading.Event):
    """pynetdicom's reactor checkpoint, counting the reactor's arrivals at it, so a pause can
    be confirmed rather than inferred from ``_is_paused`` (see :func:`pause_reactor`)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.arrivals += 1
        return super().wait(timeout)


def pause_reactor(assoc: Association, timeout: float = 5.0) -> bool:
    """Hold pynetdicom's association reactor so this thread alone reads DIMSE responses.

    pynetdicom's own pause (clear the checkpoint, wait for ``_is_paused``) can pass while its
    reactor has just gone through the checkpoint and is about to read the message queue: a
    response arriving then is taken by the reactor ("Received unexpected C-STORE service
    message") and the sender waits out the DIMSE timeout — seen here about once in a few hundred
    sends once TCP_NODELAY made responses fast. Here the pause holds only once the reactor has
    come back to the cleared checkpoint. False when this pynetdicom has no such internals.
    """
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is None or not hasattr(assoc, "_is_paused"):
        return False
    if not isinstance(checkpoint, _Checkpoint):
        checkpoint = _Checkpoint()
        checkpoint.set()
        assoc._reactor_checkpoint = checkpoint  # the reactor looks the attribute up every tick
    checkpoint.clear()
    if threading.current_thread() is assoc:  # called from the reactor itself (a C-GET handler): it is busy with us
        return True
    seen = checkpoint.arrivals
    deadline = time.monotonic() + timeout
    while (checkpoint.arrivals == seen or not assoc._is_paused) and assoc.is_established:
        if time.monotonic() > deadline:
            raise TimeoutError("pynetdicom's reactor did not pause")
        time.sleep(0.0001)
    return True


def resume_reactor(assoc: Association) -> None:
    assoc._reactor_checkpoint.set()


def let_peer_in(assoc: Association, timeout: float = 1.0) -> None:
    """Wait until pynetdicom's DUL thread has sent what is queued for the peer, and a moment
    more, so that it reads what the peer sent meanwhile, such as a C-CANCEL.

    Its reactor reads the socket only in a loop where it has nothing left to send: a handler
    that yields C-FIND responses faster than they go out keeps it from ever seeing a C-CANCEL
    (seen in CI: all 3,000 matches of a cancelled C-FIND sent). pynetdicom 3.0 internals;
    without them this returns at once.
    """
    queued = getattr(getattr(assoc, "dul", None), "to_provider_queue", None)
    if queued is None:
        return
    deadline = time.monotonic() + timeout
    while queued.qsize() and time.monotonic() < deadline and assoc.is_established:
        time.sleep(0.0005)
    time.sleep(0.002)  # the DUL's next loops: with nothing to send, they read the socket


class Blindfold:
    """Stands in for pynetdicom's AssociationSocket while our own code reads the socket:
    nothing is ever ready to be read by pynetdicom; sending and closing still reach the socket.
    ``handed_over`` is set once pynetdicom's reader has polled it twice (it has let go).

    With ``park_s``, each later poll holds pynetdicom's DUL thread up to that long, or until
    :meth:`release`: a DUL polling every few milliseconds takes the GIL from the thread doing
    the work some two hundred times a second, for nothing but what others queue to send.
    """

    def __init__(self, wrapped: Any, park_s: float = 0.0) -> None:
        self._wrapped = wrapped
        self._polls = 0
        self._park_s = park_s
        self._released = threading.Event()
        self.handed_over = threading.Event()

    @property
    def ready(self) -> bool:
        self._polls += 1
        if self._polls >= 2:
            self.handed_over.set()
            if self._park_s:
                self._released.wait(self._park_s)
        return False

    def release(self) -> None:
        """Let the DUL thread go on at once, and never hold it again (the event stays set)."""
        self._released.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)
