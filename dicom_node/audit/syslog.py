"""RFC 5424 syslog sender for audit messages (the DICOM audit transport, PS3.15 A.5 / RFC 5425).

Each message is ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID - BOM XML``: facility 10
(security/authorization), severity notice (warning for failures), MSGID ``DICOM+RFC3881``
as IHE ATNA names it. Over TCP and TLS each message is prefixed by its length (octet
counting, RFC 6587 3.4.1 / RFC 5425 4.3) so a collector never has to guess where one ends.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading

from dicom_node.audit.settings import SyslogSettings

__all__ = ["SyslogSender", "format_message"]

log = logging.getLogger(__name__)

_FACILITY = 10  # security/authorization messages
_NOTICE, _WARNING = 5, 4
_MSGID = "DICOM+RFC3881"
_APP = "dicom-node"
_BOM = "\ufeff"
_MAX_UDP = (
    65_000  # one datagram per message (RFC 5426); larger would be fragmented or dropped
)


def format_message(
    xml: str,
    failure: bool,
    when: dt.datetime | None = None,
    hostname: str | None = None,
) -> bytes:
    """One RFC 5424 message carrying ``xml`` as its UTF-8 MSG (with the BOM RFC 5424 6.4 asks for)."""
    pri = _FACILITY * 8 + (_WARNING if failure else _NOTICE)
    stamp = (
        (when or dt.datetime.now(dt.UTC))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "_")
    header = f"<{pri}>1 {stamp} {host} {_APP} {os.getpid()} {_MSGID} - "
    return header.encode("ascii", "replace") + (_BOM + xml).encode("utf-8")


class SyslogSender:
    """Sends to one collector; a stream connection is kept and re-made once when it broke.

    Failures raise OSError to the caller (:class:`dicom_node.audit.trail.AuditTrail` logs them):
    an audit message lost must be visible in the node's own log.
    """

    def __init__(self, settings: SyslogSettings) -> None:
        self.settings = settings
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def send(self, message: bytes) -> None:
        if self.settings.transport == "udp":
            if len(message) > _MAX_UDP:
                raise OSError(
                    f"audit message of {len(message)} bytes is too large for UDP syslog"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, (self.settings.host, self.settings.port))
            return
        frame = str(len(message)).encode("ascii") + b" " + message
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    self._sock.sendall(frame)
                    return
                except OSError:  # ssl.SSLError included
                    self.close_locked()
                    if attempt == 2:
                        raise

    def _connect(self) -> socket.socket:
        raw = socket.create_connection(
            (self.settings.host, self.settings.port), timeout=self.settings.timeout_s
        )
        if self.settings.transport != "tls":
            return raw
        from dicom_node.tls import client_context

        context = client_context(
            ca_certificates=self.settings.ca_certificates,
            certificate=self.settings.certificate,
            private_key=self.settings.private_key,
        )
        return context.wrap_socket(raw, server_hostname=self.settings.host)

    def close_locked(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError as exc:
                log.debug("closing the syslog connection: %s", exc)
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
