"""The SCP's DICOM TLS listener (PS3.15 B.1): pynetdicom's server, admitting connections as the
plain one does, with the TLS handshake moved off the accept loop.

pynetdicom wraps each accepted socket in ``get_request``, handshaking there: one client that
connects and never sends a ClientHello would hold the loop, and every other connection with
it. Here the socket is wrapped without handshaking; OpenSSL handshakes on the first read, which
is admission's read of the A-ASSOCIATE-RQ in the connection's own thread, under its deadline
(``association_timeout_s``). A failed handshake — no certificate where one is required, a
certificate our CAs did not sign, TLS below ``min_version`` — is a refused connection with
one WARNING line.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from dicom_node.receive.admission import AdmittingServer

__all__ = ["TlsAdmittingServer"]


class TlsAdmittingServer(AdmittingServer):
    """An :class:`AdmittingServer` whose ``ssl_context`` wraps without handshaking at accept."""

    ssl_context: Any

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        listener = cast(socket.socket, self.socket)
        client, address = listener.accept()
        return self.ssl_context.wrap_socket(
            client, server_side=True, do_handshake_on_connect=False
        ), address
