"""Socket options pynetdicom leaves at their defaults.

DIMSE is request/response over small PDUs: with Nagle's algorithm on, each C-FIND response,
C-STORE request tail or response can wait for the peer's delayed ACK (~40 ms on Linux) —
per message. DCMTK disables Nagle when TCP_NODELAY is set in its environment; pynetdicom
has no option, so this handler does it as each connection opens.
"""

from __future__ import annotations

import socket

from pynetdicom.events import Event

__all__ = ["tcp_nodelay"]


def tcp_nodelay(event: Event) -> None:
    """EVT_CONN_OPEN handler: send small PDUs at once (TCP_NODELAY)."""
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
