"""A syslog collector for tests: UDP datagrams or octet-counted TCP/TLS frames, parsed as RFC 5424."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass

__all__ = ["Collector", "Syslog5424"]

# RFC 5424 6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
_HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)) "
    rb"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rb"(?P<sd>-|\[.*?\]) (?P<msg>.*)$",
    re.DOTALL,
)


@dataclass
class Syslog5424:
    pri: int
    msgid: str
    app: str
    xml: ET.Element


def parse(frame: bytes) -> Syslog5424:
    match = _HEADER.match(frame)
    if match is None:
        raise ValueError(f"not an RFC 5424 message: {frame[:80]!r}")
    msg = match["msg"]
    if not msg.startswith(b"\xef\xbb\xbf"):
        raise ValueError("MSG is not BOM-prefixed UTF-8 (RFC 5424 6.4)")
    return Syslog5424(
        int(match["pri"]),
        match["msgid"].decode(),
        match["app"].decode(),
        ET.fromstring(msg[3:].decode("utf-8")),
    )


class Collector:
    """Listens on a free loopback port; ``messages`` fills as they arrive (parsed)."""

    def __init__(self, transport: str, context: ssl.SSLContext | None = None) -> None:
        self.transport = transport
        self.messages: list[Syslog5424] = []
        self.errors: list[str] = []
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = context
        self._thread = threading.Thread(target=self._serve, daemon=True)
        if transport != "udp":
            self.sock.listen()
        self._thread.start()

    def _add(self, frame: bytes) -> None:
        try:
            self.messages.append(parse(frame))
        except (ValueError, ET.ParseError) as exc:
            self.errors.append(str(exc))

    def _serve(self) -> None:
        while True:
            try:
                if self.transport == "udp":
                    data, _ = self.sock.recvfrom(65535)
                    self._add(data)
                    continue
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b" " in buffer:  # RFC 6587 octet counting: LENGTH SP MESSAGE
                    length, _, rest = buffer.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self._add(rest[: int(length)])
                    buffer = rest[int(length) :]
        except (OSError, ValueError) as exc:
            self.errors.append(str(exc))
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
