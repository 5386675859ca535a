"""What a connection must pass before pynetdicom serves it: a whole, decodable A-ASSOCIATE-RQ
(PS3.8 9.3.2) within ``association_timeout_s``, and at most ``max_associations_per_peer``
connections from its address at once. The same in both ways the node serves: pynetdicom's own
server (:class:`AdmittingServer`, one receiver) and the dispatcher's receivers
(:class:`~dicom_node.receive.dispatch.HandedServer`), whose handler is :class:`AdmittingHandler`.

Why the node reads the request itself: pynetdicom's DUL reads a PDU with one blocking
``recv`` after another until it has the length the header declares, so a peer sending one byte
every few seconds is never timed out; and its ACSE timeout then waits for that DUL thread to
end. 50 such sockets were held open for good. Here the request is read against one deadline
for the whole of it, then replayed to pynetdicom (:class:`~dicom_node.net.Replay`), which
negotiates as before; once associated, ``network_timeout_s`` (idle time) applies instead.

Why the node decodes it first: pynetdicom logs a PDU it cannot decode at ERROR with a traceback,
after logging the offending value raw (a calling AE title with NUL and escape characters
reached the log as they were). A rejected connection gets one WARNING line instead, with the
peer's address and the reason, peer bytes escaped (:func:`~dicom_node.net.printable`), and
pynetdicom's own lines about those bytes are dropped; the same holds for a PDU an established
association cannot decode. pynetdicom's other lines are escaped (:class:`_PeerText`). The peer
gets what PS3.8 prescribes: an A-ABORT (9.3.8) for an invalid or unexpected PDU, an
A-ASSOCIATE-RJ (9.3.4) over the per-peer limit, and the connection closed when its time is up.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.fsm import TRANSITION_TABLE
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from dicom_node.net import Replay, printable

__all__ = ["Admission", "AdmittingHandler", "AdmittingServer", "PeerCount", "Refusal", "peer_name", "refuse_over_limit"]

log = logging.getLogger(__name__)

_ASSOCIATE_RQ = 0x01
_PDU_NAMES = {
    0x01: "A-ASSOCIATE-RQ", 0x02: "A-ASSOCIATE-AC", 0x03: "A-ASSOCIATE-RJ", 0x04: "P-DATA-TF",
    0x05: "A-RELEASE-RQ", 0x06: "A-RELEASE-RP", 0x07: "A-ABORT",
}  # fmt: skip
# An A-ASSOCIATE-RQ proposing all 128 presentation contexts with a dozen transfer syntaxes each
# is under 64 KiB; a larger declared length is not a request to wait for.
_MAX_REQUEST = 256 * 1024
# A-ABORT reasons (PS3.8 Table 9-26, source: service-provider).
_UNRECOGNIZED_PDU, _UNEXPECTED_PDU, _INVALID_PARAMETER = 0x01, 0x02, 0x06
_LINGER_S = 2.0  # ARTIM for a refused connection: how long the peer has to read our PDU and close
_MAX_LINGERING = 256  # refused connections kept at once; more are closed at once


def peer_name(address: Any) -> str:
    """``host:port`` of a peer's socket address, for log lines (the port tells connections apart)."""
    host, port = str(address[0]), int(address[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _PeerText(logging.Filter):
    """On every pynetdicom logger (and pydicom's): drops the records made on a thread while that
    thread decodes a peer's PDU (:meth:`quiet`), since pynetdicom logs the offending value raw,
    then raises with the same text, which the node logs once, escaped; and escapes the others
    (pynetdicom logs a non-conformant UID from a DIMSE command as it came, escape sequences and
    all)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "pynetdicom"]
        for name in ["pynetdicom", *names, "pydicom"]:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self._local, "quiet", False):
            return False
        message = record.getMessage()
        if not message.isprintable():
            record.msg, record.args = printable(message, limit=len(message)), None
        return True

    @contextmanager
    def quiet(self) -> Iterator[None]:
        self._local.quiet = True
        try:
            yield
        finally:
            self._local.quiet = False


_PEER_TEXT = _PeerText()


class Refusal(Exception):
    """A connection the node does not serve: why (for the log line), and the PDU the peer is
    told so with, if any."""

    def __init__(self, reason: str, pdu: bytes | None = None, quiet: bool = False) -> None:
        super().__init__(reason)
        self.pdu = pdu
        self.quiet = quiet  # nothing was asked: logged at DEBUG (a port check, a health probe)


def _abort(reason: int) -> bytes:
    pdu = A_ABORT_RQ()
    pdu.source = 0x02  # service-provider
    pdu.reason_diagnostic = reason
    return bytes(pdu.encode())


def _over_limit_rj() -> bytes:
    pdu = A_ASSOCIATE_RJ()
    pdu.result = 0x02  # rejected-transient
    pdu.source = 0x03  # service-provider, presentation-related function
    pdu.reason_diagnostic = 0x02  # local-limit-exceeded
    return bytes(pdu.encode())


class PeerCount:
    """Connections per peer address, admitted up to ``limit`` at once (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        with self._lock:
            if self._count[address] >= self.limit:
                return False
            self._count[address] += 1
            return True

    def release(self, address: str, count: int = 1) -> None:
        with self._lock:
            self._count[address] -= count
            if self._count[address] <= 0:
                del self._count[address]


class Admission:
    """The deadline for a connection's A-ASSOCIATE-RQ, and the count of connections per peer
    address (used where the node accepts itself; the dispatcher keeps its own)."""

    def __init__(self, timeout_s: float, per_peer: int) -> None:
        self.timeout_s = timeout_s
        self.peers = PeerCount(per_peer)

    def read_request(self, sock: socket.socket) -> bytes:
        """The whole A-ASSOCIATE-RQ PDU the peer sends first, checked to decode as pynetdicom
        will decode it; Refusal otherwise. The socket is left blocking, as pynetdicom expects."""
        deadline = time.monotonic() + self.timeout_s
        try:
            header = self._read(sock, 6, deadline, 0)
            pdu_type, length = struct.unpack(">BxI", header)
            if pdu_type != _ASSOCIATE_RQ:
                name = _PDU_NAMES.get(pdu_type)
                if name is None:
                    what, code = f"unknown PDU type 0x{pdu_type:02X}", _UNRECOGNIZED_PDU
                else:
                    what, code = f"{name} PDU", _UNEXPECTED_PDU
                raise Refusal(f"{what} instead of an A-ASSOCIATE-RQ", _abort(code))
            if length > _MAX_REQUEST:
                reason = f"A-ASSOCIATE-RQ declares {length} bytes (at most {_MAX_REQUEST})"
                raise Refusal(reason, _abort(_INVALID_PARAMETER))
            request = header + self._read(sock, length, deadline, 6, length + 6)
        finally:
            sock.settimeout(None)
        _check(request)
        return request

    def _read(self, sock: socket.socket, size: int, deadline: float, before: int, total: int | None = None) -> bytes:
        """Exactly ``size`` bytes by ``deadline`` (``before`` bytes of the PDU already read,
        ``total`` its length when known: for the log line)."""
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            left = deadline - time.monotonic()
            of = f" of {total}" if total is not None else ""
            if left <= 0:
                raise Refusal(f"no whole A-ASSOCIATE-RQ within {self.timeout_s:g} s ({before + got}{of} bytes came)")
            sock.settimeout(left)
            try:
                count = sock.recv_into(view[got:])
            except TimeoutError:
                continue  # the loop says so
            except OSError as exc:
                raise Refusal(f"connection failed after {before + got}{of} bytes: {exc.strerror or exc}") from exc
            if not count:
                seen = before + got
                raise Refusal(f"connection closed after {seen}{of} bytes of an A-ASSOCIATE-RQ", quiet=not seen)
            got += count
        return bytes(buffer)


def _check(request: bytes) -> None:
    """Decode ``request`` as pynetdicom's DUL and state machine will (PDU, then primitive), so
    that whatever pynetdicom cannot make of it is refused here, in one line. A UID or name with
    a character that is not printable is refused too: pynetdicom takes any UID of up to 64
    characters, and logs one that does not conform as it is."""
    with _PEER_TEXT.quiet():
        try:
            pdu = A_ASSOCIATE_RQ()
            pdu.decode(request)
            primitive = pdu.to_primitive()
        except Exception as exc:  # whatever pynetdicom raises on bytes it cannot decode
            raise Refusal(f"A-ASSOCIATE-RQ cannot be decoded: {_why(exc)}", _abort(_INVALID_PARAMETER)) from exc
    for text in _texts(primitive):
        if not text.isprintable():
            reason = f"A-ASSOCIATE-RQ holds a UID or name with a control character: {printable(text)}"
            raise Refusal(reason, _abort(_INVALID_PARAMETER))


def _why(exc: Exception) -> str:
    """Why pynetdicom could not decode a PDU, for a log line: its message, escaped; its bare
    assertions are all of an item's length against the bytes there are, so they are named."""
    if isinstance(exc, AssertionError) and not str(exc):
        return "an item's length does not match its bytes"
    return f"{type(exc).__name__}: {printable(str(exc))}"


_ITEM_TEXTS = ("implementation_class_uid", "implementation_version_name", "sop_class_uid", "service_class_uid")


def _texts(primitive: Any) -> Iterator[str]:
    """The UIDs and names of an A-ASSOCIATE primitive that pynetdicom may log."""
    yield from (primitive.application_context_name or "", primitive.calling_ae_title, primitive.called_ae_title)
    for context in primitive.presentation_context_definition_list:
        yield context.abstract_syntax or ""
        yield from context.transfer_syntax
    for item in primitive.user_information:
        yield from (value for name in _ITEM_TEXTS if isinstance(value := getattr(item, name, None), str))
        yield from getattr(item, "related_general_sop_class_identification", None) or ()


class _Closer:
    """Closes refused connections as PS3.8 9.2 has it (Sta13), in a thread of its own: after our
    A-ASSOCIATE-RJ or A-ABORT the peer closes the connection, and only when it has not within
    ARTIM (``_LINGER_S``) do we; what it sends meanwhile is read and dropped. An RJ at accept
    (over the per-peer limit) goes once the peer has sent its request, as the answer to it.
    Otherwise peers failed: an RJ sent as the connection opened reached pynetdicom before it
    had looked at its new connection, which it then found closed and reported as an abort (1
    rejection in 40 here); a close right behind the PDU, or with the peer's bytes unread (a
    reset), can cost the peer our PDU."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_recv, self._wake_send = socket.socketpair()
        self._selector.register(self._wake_recv, selectors.EVENT_READ)
        self._new: list[tuple[socket.socket, bytes | None]] = []
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        self._thread: threading.Thread | None = None

    def close(self, sock: socket.socket, pdu: bytes | None, when_asked: bool = False) -> None:
        """Send ``pdu`` without waiting (``when_asked``: once the peer has sent something) and
        close ``sock`` as above; at once if there is no PDU (its time is up). ``sock`` itself is
        closed now (this keeps a duplicate), so its owner may close it again."""
        if pdu is None:
            sock.close()
            return
        try:
            if not when_asked:
                sock.send(pdu, socket.MSG_DONTWAIT)
            kept = sock.dup()
        except OSError:  # gone already: closing is all that is left
            sock.close()
            return
        sock.close()
        kept.setblocking(False)
        with self._lock:
            if len(self._new) + len(self._deadlines) >= _MAX_LINGERING:
                kept.close()
                return
            self._new.append((kept, pdu if when_asked else None))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="refused-closer", daemon=True)
                self._thread.start()
        self._wake_send.send(b"\0")

    def _run(self) -> None:
        while True:
            with self._lock:
                new, self._new = self._new, []
            for sock, answer in new:
                self._deadlines[sock] = time.monotonic() + _LINGER_S
                self._selector.register(sock, selectors.EVENT_READ, answer)
            for key, _ in self._selector.select(0.25):
                if key.fileobj is self._wake_recv:
                    self._wake_recv.recv(4096)
                    continue
                peer: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    ended = not peer.recv(65536)
                    if key.data is not None and not ended:  # asked: answer, once
                        peer.send(key.data, socket.MSG_DONTWAIT)
                        self._selector.modify(peer, selectors.EVENT_READ, None)
                except BlockingIOError:
                    ended = False
                except OSError:
                    ended = True
                if ended:
                    self._drop(peer)
            now = time.monotonic()
            for sock in [s for s, deadline in self._deadlines.items() if deadline <= now]:
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._deadlines[sock]
        sock.close()


_CLOSER = _Closer()


def refuse_over_limit(sock: socket.socket, address: Any, limit: int) -> None:
    """Reject a connection from ``address`` (host, port), whose host holds ``limit`` already:
    A-ASSOCIATE-RJ (rejected-transient, local-limit-exceeded; PS3.8 Table 9-21) and close,
    without waiting."""
    log.warning(
        "association from %s rejected: %d connections from that address already (max_associations_per_peer)",
        peer_name(address), limit,
    )  # fmt: skip
    _CLOSER.close(sock, _over_limit_rj(), when_asked=True)


def _guard_decoding(assoc: Association, peer: str) -> None:
    """A PDU of an association under way that pynetdicom cannot decode: one WARNING line, and
    the invalid-PDU event (Evt19: A-ABORT to the peer, PS3.8 9.2.3) instead of pynetdicom's
    ERROR with a traceback. One it decodes but its state table answers with an abort (AA-8, an
    A-ASSOCIATE-AC once associated): one WARNING line too, where pynetdicom says nothing.
    pynetdicom 3.0 internals; left alone where they differ."""
    dul: Any = assoc.dul
    if not hasattr(dul, "_decode_pdu") or not hasattr(getattr(dul, "state_machine", None), "current_state"):
        return
    decode = dul._decode_pdu

    def checked(data: bytearray) -> tuple[Any, str]:
        name = _PDU_NAMES.get(data[0], "PDU") if data else "PDU"
        with _PEER_TEXT.quiet():
            try:
                pdu, event = decode(data)
            except Exception as exc:  # noqa: BLE001 - as pynetdicom's own reader, which aborts on any
                log.warning("association from %s aborted: %s PDU cannot be decoded: %s", peer, name, _why(exc))
                return None, "Evt19"
        if TRANSITION_TABLE.get((event, dul.state_machine.current_state)) == "AA-8":
            log.warning("association from %s aborted: unexpected %s PDU", peer, name)
        return pdu, event

    dul._decode_pdu = checked


class _Served(Protocol):
    admission: Admission

    def association_ended(self, address: str) -> None: ...


class AdmittingHandler(RequestHandler):
    """pynetdicom's request handler, admitting the connection first (see module doc) and staying
    until its association ends, to tell the server so."""

    server: Any  # an AdmittingServer or a HandedServer (both _Served)

    def handle(self) -> None:
        address, peer = str(self.client_address[0]), peer_name(self.client_address)
        server: _Served = self.server
        try:
            try:
                request = server.admission.read_request(self.request)
            except Refusal as refusal:
                (log.debug if refusal.quiet else log.warning)("association from %s rejected: %s", peer, refusal)
                _CLOSER.close(self.request, refusal.pdu)
                return
            assoc = self._create_association()
            assoc.dul.socket = Replay(assoc.dul.socket, request, assoc.dul)  # type: ignore[assignment]
            _guard_decoding(assoc, peer)
            evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
            assoc.start()
            assoc.join()
        finally:
            server.association_ended(address)


class AdmittingServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with a listen backlog for bursts of associations, which
    admits connections (see module doc): over the per-peer limit at once, at accept."""

    request_queue_size = 64
    daemon_threads = True  # a handler thread lives as long as its association: never joined

    def __init__(self, *args: Any, admission: Admission, **kwargs: Any) -> None:
        self.admission = admission
        kwargs["request_handler"] = AdmittingHandler
        super().__init__(*args, **kwargs)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        address = str(client_address[0])
        if self.admission.peers.admit(address):
            return True
        refuse_over_limit(request, client_address, self.admission.peers.limit)
        return False

    def association_ended(self, address: str) -> None:
        self.admission.peers.release(address)
