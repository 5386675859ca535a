"""Socket tuning pynetdicom leaves to us.

pynetdicom does not set TCP_NODELAY. A DIMSE exchange is a few small writes per message
(command PDU, dataset PDU, response), which Nagle's algorithm holds back until the peer's
delayed ACK — some 40 ms per instance on loopback. Every association the node makes or
accepts binds :func:`no_delay` to EVT_CONN_OPEN.
"""

from __future__ import annotations

import socket

from pynetdicom import evt
from pynetdicom.events import Event

__all__ = ["no_delay", "NO_DELAY_HANDLER"]


def no_delay(event: Event) -> None:
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket is not None else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NO_DELAY_HANDLER = (evt.EVT_CONN_OPEN, no_delay)
