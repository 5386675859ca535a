"""C-STORE on an established association without pynetdicom's polling and per-PDU machinery.

pynetdicom 3.0 passes every PDU between two threads that poll each other every millisecond
(its DUL reactor and the association reactor), decodes and encodes every command through
pydicom, and streams a data set fragment by fragment through a ``NamedTemporaryFile``. For a
small image that is most of the time an instance takes. Here, once pynetdicom has negotiated
the association, its reactor (``Association._run_reactor``) is replaced by
:class:`FastReactor`, running in the association's own thread:

1. It takes the socket's reads from pynetdicom's DUL thread: the DUL's socket wrapper is swapped
   for a :class:`Blindfold` that reports nothing to read (the DUL still sends what it is
   given), once the DUL thread has polled it twice, i.e. is no longer inside a read. Its
   later polls are parked rather than repeated every few milliseconds, until hand-back.
2. It reads P-DATA-TF PDUs (PS3.8 9.3.5) itself. A C-STORE-RQ on an accepted storage context
   whose command :func:`~dicom_node.receive.wire.store_request` takes has its data set
   streamed straight into a file in ``incoming`` (File Meta as pynetdicom writes it), which
   :meth:`StoreHandler.store_file` then validates, commits durably and queues for the index — the
   same code as pynetdicom's path — before the C-STORE-RSP is written to the socket.
3. Anything else — another DIMSE request (C-ECHO, C-FIND…), A-RELEASE-RQ, A-ABORT, an unknown
   PDU, the connection closing, the network timeout — is handed back: the bytes already read
   are replayed to the DUL ahead of the socket (:class:`~dicom_node.net.Replay`) and
   pynetdicom's own reactor runs until it has served one request (the fast path then takes
   over again) or the association ends. Peers see what pynetdicom alone would have done.

A protocol error inside a data set (a PDV overrunning its PDU, a fragment of another context,
a command fragment) ends the association with A-ABORT, its partial file deleted.

All of it leans on pynetdicom 3.0 internals. Where they are missing, where the socket is TLS,
or where anything but pynetdicom's logging handlers is bound to PDU- or DIMSE-level events
(which the fast path does not fire), :class:`FastPath` leaves the association to pynetdicom.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import struct
from typing import Any

from pynetdicom import _handlers, evt
from pynetdicom.events import Event

from dicom_node.net import Blindfold, Replay, printable
from dicom_node.receive.handlers import StoreHandler
from dicom_node.receive.wire import (
    P_DATA_TF,
    StoreRequest,
    command_fields,
    file_meta,
    pdu_header,
    store_request,
    store_response,
)
from dicom_node.store.filestore import start_writeback

__all__ = ["FastPath", "FastReactor"]

log = logging.getLogger(__name__)

_BUFFER = 1 << 20  # socket reads; a data set is written from it as it arrives, never held whole
_MAX_COMMAND = 64 * 1024  # a C-STORE-RQ command is a few hundred bytes
_WRITEBACK_EVERY = 8 << 20  # a large object has its writeback started as it arrives
_HANDOVER_TIMEOUT_S = 2.0
# While the fast path reads, pynetdicom's DUL thread only sends what others queue (an abort
# from another thread): it is parked this long per poll, and let go at once on hand-back.
_DUL_PARK_S = 0.05
_LOW_LEVEL_EVENTS = (
    evt.EVT_DATA_RECV, evt.EVT_DATA_SENT, evt.EVT_PDU_RECV, evt.EVT_PDU_SENT,
    evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT, evt.EVT_FSM_TRANSITION,
)  # fmt: skip
# pynetdicom's own debug-logging handlers, bound by default: the fast path may skip those.
_LOGGING_HANDLERS = {
    getattr(_handlers, name)
    for name in ("standard_dimse_recv_handler", "standard_dimse_sent_handler", "standard_pdu_recv_handler", "standard_pdu_sent_handler")
    if hasattr(_handlers, name)
}
_ASSOC_INTERNALS = ("_run_reactor", "_serve_request", "_kill", "_accepted_cx", "_sent_release")
_DUL_INTERNALS = ("_idle_timer", "state_machine", "event_queue", "to_user_queue", "_recv_pdu")
_names = itertools.count()


class _GiveBack(Exception):
    """Leave the byte stream, starting with ``replay``, to pynetdicom."""

    def __init__(self, replay: bytes, restart_idle: bool = True) -> None:
        super().__init__()
        self.replay = replay
        self.restart_idle = restart_idle  # False after our network timeout: pynetdicom's fires


class _ProtocolError(Exception):
    """The peer broke PS3.8 inside a data set: the association is aborted."""


class _Closed(Exception):
    """The connection ended (EOF, reset, timeout, or closed by a local abort)."""

    def __init__(self, timed_out: bool = False) -> None:
        super().__init__()
        self.timed_out = timed_out


class _Stream:
    """Buffered reads of the socket; ``record`` collects what :meth:`take` returns, so that a
    message can be handed back whole."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(_BUFFER)
        self.view = memoryview(self.buf)
        self.pos = self.end = 0
        self.record: bytearray | None = None

    def reset(self) -> None:
        self.pos = self.end = 0
        self.record = None

    def _fill(self, need: int) -> None:
        if self.pos + need > len(self.buf):
            kept = self.end - self.pos
            self.buf[:kept] = self.buf[self.pos : self.end]
            self.pos, self.end = 0, kept
        try:
            while self.end - self.pos < need:
                got = self.sock.recv_into(self.view[self.end :])
                if not got:
                    raise _Closed()
                self.end += got
        except TimeoutError as exc:
            raise _Closed(timed_out=True) from exc
        except OSError as exc:
            raise _Closed() from exc

    def take(self, size: int) -> bytes:
        """Exactly ``size`` (≤ the buffer) bytes."""
        if self.end - self.pos < size:
            self._fill(size)
        data = bytes(self.view[self.pos : self.pos + size])
        self.pos += size
        if self.record is not None:
            self.record += data
        return data

    def some(self, size: int) -> memoryview:
        """Up to ``size`` bytes: what is buffered, or one read's worth. Valid until the next read."""
        if self.pos == self.end:
            self.pos = self.end = 0
            self._fill(1)
        chunk = self.view[self.pos : min(self.end, self.pos + size)]
        self.pos += len(chunk)
        return chunk

    def unread(self) -> bytes:
        return bytes(self.view[self.pos : self.end])


def _unusable(assoc: Any, handler: StoreHandler) -> str | None:
    """Why the fast path cannot serve ``assoc``, or None."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if type(sock) is not socket.socket:
        return "not a plain TCP socket (TLS?)"
    if not all(hasattr(assoc, a) for a in _ASSOC_INTERNALS) or not all(hasattr(assoc.dul, a) for a in _DUL_INTERNALS):
        return "pynetdicom internals not found"
    if not hasattr(assoc.dimse, "message") or not hasattr(assoc.dimse, "msg_queue"):
        return "pynetdicom internals not found"
    if assoc.get_handlers(evt.EVT_C_STORE)[0] is not handler:
        return "another EVT_C_STORE handler is bound"
    for event in _LOW_LEVEL_EVENTS:
        if any(h not in _LOGGING_HANDLERS for h, _ in assoc.get_handlers(event)):
            return f"a handler is bound to {event.name}"
    return None


class FastPath:
    """EVT_REQUESTED handler: every association it can serve gets a :class:`FastReactor`."""

    def __init__(self, handler: StoreHandler) -> None:
        self.handler = handler

    def __call__(self, event: Event) -> None:
        assoc: Any = event.assoc
        reason = _unusable(assoc, self.handler)
        if reason is not None:
            log.debug("C-STORE fast path off for this association: %s", reason)
            return
        assoc._run_reactor = FastReactor(assoc, self.handler)


class FastReactor:
    """Replaces ``Association._run_reactor`` of one accepted association (see module doc)."""

    def __init__(self, assoc: Any, handler: StoreHandler) -> None:
        self.assoc = assoc
        self.handler = handler
        self.dul = assoc.dul
        self.wrapper = assoc.dul.socket
        self.sock: socket.socket = self.wrapper.socket
        self.blindfold: Blindfold | None = None  # while the fast path reads
        self.temp_prefix = f"fast-{os.getpid()}-"  # unique across the node's receiver processes
        self.stream = _Stream(self.sock)
        self.calling = ""
        self.extended: dict[str, Any] = {}
        self.sock_timeout: float | None = None

    def __call__(self) -> None:
        assoc = self.assoc
        self.calling = assoc.requestor.ae_title.strip()
        self.extended = getattr(assoc.acceptor, "accepted_common_extended", None) or {}
        try:
            while True:
                if self._take():
                    try:
                        self._serve()
                        return
                    except _GiveBack as back:
                        self._give_back(back.replay, back.restart_idle)
                if not self._pynetdicom_serves_one():
                    return
        except _ProtocolError as exc:
            log.warning("association from %s aborted: %s", printable(self.calling), exc)
            self._abort()
        except Exception:  # a bug here must not leave the association hanging
            log.exception("C-STORE fast path failed; aborting the association from %s", printable(self.calling))
            self._abort()
        finally:
            if isinstance(self.dul.socket, Blindfold):
                self.dul.socket = self.wrapper
            self._release_dul()

    # -- taking the socket's reads from pynetdicom and giving them back -------------------------

    def _take(self) -> bool:
        """Stop the DUL reading; False (nothing changed) if it is busy or has read ahead."""
        dul, assoc = self.dul, self.assoc
        if not assoc.is_established or not dul.is_alive() or self.wrapper.socket is not self.sock:
            return False
        blindfold = Blindfold(self.wrapper, park_s=_DUL_PARK_S)
        dul.socket = blindfold
        if not blindfold.handed_over.wait(_HANDOVER_TIMEOUT_S) or self._dul_busy():
            dul.socket = self.wrapper
            blindfold.release()
            return False
        self.blindfold = blindfold
        self.sock_timeout = self.sock.gettimeout()
        self.sock.settimeout(assoc.network_timeout)
        self.stream.reset()
        return True

    def _release_dul(self) -> None:
        """Let pynetdicom's DUL thread poll at its own pace again."""
        if self.blindfold is not None:
            self.blindfold.release()
            self.blindfold = None

    def _dul_busy(self) -> bool:
        """pynetdicom read something before it let go, or is mid-message: it serves that first."""
        dul, dimse = self.dul, self.assoc.dimse
        return (
            dul.state_machine.current_state != "Sta6"
            or not dul.event_queue.empty()
            or not dul.to_user_queue.empty()
            or not dul._recv_pdu.empty()
            or dimse.message is not None
            or not dimse.msg_queue.empty()
        )

    def _give_back(self, replay: bytes, restart_idle: bool) -> None:
        self.sock.settimeout(self.sock_timeout)
        if restart_idle:  # the DUL's network timer saw none of our reads
            self.dul._idle_timer.restart()
        self.dul.socket = Replay(self.wrapper, replay, self.dul) if replay else self.wrapper
        self._release_dul()  # it reads the replayed message now, not after its park

    def _pynetdicom_serves_one(self) -> bool:
        """Run pynetdicom's reactor until it has served one request (True: take over again) or
        the association has ended (False)."""
        assoc = self.assoc
        served = False
        serve_request = assoc._serve_request

        def serve_then_yield(msg: Any, context_id: int) -> None:
            nonlocal served
            serve_request(msg, context_id)
            if assoc.is_established and not assoc._sent_release:
                served = True
                assoc._kill = True  # ends pynetdicom's loop after this iteration

        assoc._serve_request = serve_then_yield
        try:
            type(assoc)._run_reactor(assoc)
        finally:
            del assoc._serve_request
        if served and assoc.is_established:
            assoc._kill = False
            return True
        return False

    def _abort(self) -> None:
        self._release_dul()  # it must send the A-ABORT; the blindfold stays, so it reads nothing
        if self.assoc.is_established:
            self.assoc.abort()  # the DUL sends A-ABORT and closes; the blindfold keeps it from reading

    def _ended_here(self) -> bool:
        """Closed by a local abort or kill (another thread), not by the peer."""
        return bool(self.assoc._kill or not self.assoc.is_established)

    # -- serving C-STORE requests ----------------------------------------------------------------

    def _serve(self) -> None:
        """C-STORE requests until something is handed back (:class:`_GiveBack`) or the
        association is ended locally (return)."""
        pdu_left = 0
        while True:
            try:
                request, pdu_left = self._command(pdu_left)
                pdu_left = self._data_set(request, pdu_left)
            except _Closed as closed:
                if self._ended_here():
                    return
                raise _GiveBack(self.stream.unread(), restart_idle=not closed.timed_out) from None

    def _command(self, pdu_left: int) -> tuple[StoreRequest, int]:
        """Read the next message's command; a C-STORE-RQ we serve, or hand the message back."""
        stream = self.stream
        # A message starting inside a PDU is replayed as a PDU of its own.
        stream.record = bytearray(pdu_header(P_DATA_TF, pdu_left) if pdu_left else b"")
        command = bytearray()
        context_id: int | None = None
        try:
            while True:
                if not pdu_left:
                    pdu_type, pdu_left = struct.unpack(">BxI", stream.take(6))
                    if pdu_type != P_DATA_TF:
                        raise _GiveBack(bytes(stream.record) + stream.unread())
                if pdu_left < 6:
                    raise _GiveBack(bytes(stream.record) + stream.unread())
                item, pdv_context, flags = struct.unpack(">IBB", stream.take(6))
                pdu_left -= 6
                size = item - 2
                fits = 0 <= size <= pdu_left and len(command) + size <= _MAX_COMMAND
                if not fits or not flags & 0x01 or context_id not in (None, pdv_context):
                    raise _GiveBack(bytes(stream.record) + stream.unread())  # pynetdicom judges
                command += stream.take(size)
                pdu_left -= size
                context_id = pdv_context
                if flags & 0x02:
                    break
            fields = command_fields(bytes(command))
            request = store_request(fields, pdv_context) if fields is not None else None
            if request is None or not self._serves(request):
                raise _GiveBack(bytes(stream.record) + stream.unread())
            return request, pdu_left
        finally:
            stream.record = None

    def _serves(self, request: StoreRequest) -> bool:
        context = self.assoc._accepted_cx.get(request.context_id)
        return (
            context is not None
            and context.abstract_syntax == request.sop_class_uid
            and request.sop_class_uid in self.handler.accepted
            and request.sop_class_uid not in self.extended
            and not self.assoc._sent_release
        )

    def _data_set(self, request: StoreRequest, pdu_left: int) -> int:
        """Stream the data set into a new file in ``incoming``, store it, answer; the bytes left
        in the current PDU. A file that cannot be made or written is answered 0xA700 once the
        data set has been read."""
        context = self.assoc._accepted_cx[request.context_id]
        path = self.handler.store.incoming / f"{self.temp_prefix}{next(_names)}.part"
        fd: int | None = None
        failed: OSError | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            _write(fd, file_meta(request.sop_class_uid, request.sop_instance_uid, context.transfer_syntax[0]))
        except OSError as exc:  # no space, no inode, no descriptor
            failed = exc
        try:
            pdu_left, failed = self._receive(request.context_id, pdu_left, fd, failed)
        except BaseException:
            if fd is not None:
                os.close(fd)
                path.unlink(missing_ok=True)
            raise
        try:
            if failed is not None:
                path.unlink(missing_ok=True)
                status = self.handler.not_stored(failed, request.sop_instance_uid, self.calling)
            else:
                status = self.handler.store_file(path, request.sop_class_uid, request.sop_instance_uid, self.calling, fd)
        finally:
            if fd is not None:
                os.close(fd)
        self._send(store_response(request, status, self.assoc.dimse.maximum_pdu_size))
        return pdu_left

    def _receive(self, context_id: int, pdu_left: int, fd: int | None, failed: OSError | None) -> tuple[int, OSError | None]:
        """Read the data set's PDVs to its last fragment, writing them to ``fd`` while that
        works; the bytes left in the current PDU and the write error, if any."""
        stream = self.stream
        unsynced = 0
        while True:
            if not pdu_left:
                header = stream.take(6)
                pdu_type, pdu_left = struct.unpack(">BxI", header)
                if pdu_type != P_DATA_TF:  # A-RELEASE-RQ, A-ABORT… in mid data set
                    raise _GiveBack(header + stream.unread())
            if pdu_left < 6:
                raise _ProtocolError(f"P-DATA-TF PDU ends inside a PDV header ({pdu_left} bytes)")
            item, pdv_context, flags = struct.unpack(">IBB", stream.take(6))
            pdu_left -= 6
            size = item - 2
            if not 0 <= size <= pdu_left:
                raise _ProtocolError(f"PDV of {item} bytes in {pdu_left + 6} left of its PDU")
            if flags & 0x01 or pdv_context != context_id:
                raise _ProtocolError("command fragment or other context inside a data set")
            pdu_left -= size
            while size:
                chunk = stream.some(size)
                size -= len(chunk)
                if fd is None or failed is not None:
                    continue
                try:
                    _write(fd, chunk)
                except OSError as exc:  # disk full: read on, answer 0xA700
                    failed = exc
                unsynced += len(chunk)
                if unsynced >= _WRITEBACK_EVERY:  # a large object: keep the disk busy meanwhile
                    start_writeback(fd)
                    unsynced = 0
            if flags & 0x02:
                break
        if fd is not None and failed is None:
            start_writeback(fd)  # overlaps the device write with the header checks
        return pdu_left, failed

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise _Closed(timed_out=True) from exc
        except OSError as exc:
            raise _Closed() from exc


def _write(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
