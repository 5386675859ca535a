"""Socket, reactor and peer-text handling pynetdicom leaves to us.

pynetdicom does not set TCP_NODELAY. A DIMSE exchange is a few small writes per message
(command PDU, dataset PDU, response), which Nagle's algorithm holds back until the peer's
delayed ACK — some 40 ms per instance on loopback. Every association the node makes or
accepts binds :func:`no_delay` to EVT_CONN_OPEN.

Whatever a peer sends (AE titles, UIDs, the text of a decoding error about its bytes) goes
into a log line only through :func:`printable`: a NUL, an escape sequence or a newline from a
peer would otherwise reach the log raw, forge a line or drive the terminal showing it.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event

__all__ = [
    "NO_DELAY_HANDLER",
    "Blindfold",
    "Replay",
    "let_peer_in",
    "no_delay",
    "pause_reactor",
    "printable",
    "resume_reactor",
]

_PRINTABLE_LIMIT = 160  # characters of one peer value in a log line


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


class Replay:
    """Stands in for pynetdicom's AssociationSocket while bytes read by our own code are handed
    to pynetdicom: those are read first, then the socket; the real wrapper returns to the DUL
    once they are drained."""

    def __init__(self, wrapped: Any, data: bytes, dul: Any) -> None:
        self._wrapped = wrapped
        self._data = memoryview(data)
        self._dul = dul

    @property
    def ready(self) -> bool:
        return bool(self._data) or bool(self._wrapped.ready)

    def recv(self, nr_bytes: int) -> bytearray:
        out = bytearray(self._data[:nr_bytes])
        self._data = self._data[len(out) :]
        if not self._data:
            self._dul.socket = self._wrapped
        if len(out) < nr_bytes:
            out += self._wrapped.recv(nr_bytes - len(out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def printable(value: str | bytes, limit: int = _PRINTABLE_LIMIT) -> str:
    """``value`` from a peer, fit for one log line: every character that is not printable
    (control characters, NUL, line breaks, bidirectional overrides), and the backslash itself,
    written as its Python escape (``\\x1b``), so the line says unambiguously what was sent;
    bytes are read as Latin-1 (one character per byte). Cut to ``limit`` characters, marked ``…``."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    cut = len(text) > limit
    shown = "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii") for c in text[:limit]
    )
    return shown + "…" if cut else shown
