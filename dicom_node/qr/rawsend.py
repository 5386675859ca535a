"""Fast C-STORE sub-operations for C-MOVE and C-GET, on top of pynetdicom 3.0.

pynetdicom re-encodes every dataset, hands its network thread one small P-DATA primitive per
PDU, and polls the socket every millisecond; for a 512 KiB CT slice that is most of the cost
of a retrieve. Three things change while sub-operations run:

1. When the peer accepted the transfer syntax a file is stored in, the bytes after its File
   Meta Information *are* the message's data set (PS3.7 6.3.1, PS3.10 7.1): :class:`RawSender`
   writes them, with a hand-encoded C-STORE-RQ command, as P-DATA-TF PDUs (PS3.8 9.3.5) in one
   ``sendall``. pynetdicom still reads, decodes and checks the peer's responses.
2. So that only one thread ever writes to the socket, every other P-DATA on that association
   (C-GET pending responses) is encoded and written by the same thread, at once.
3. Pending C-MOVE/C-GET responses, which are optional (PS3.4 C.4.2.3.1, C.4.3.3.1), are sent
   at most every ``PENDING_INTERVAL_S`` (:class:`PendingThrottle`): encoding one costs as much
   as sending an image.

All of it leans on pynetdicom internals (the reactor pause its own ``send_c_store`` uses, the
network thread's poll delay and ``send_pdu``); where they are missing, or the socket is TLS,
nothing is installed and pynetdicom does everything itself, only slower.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from dicom_node.net import pause_reactor, resume_reactor
from dicom_node.qr.query import InstanceRef
from dicom_node.qr.rawrecv import ResponseReader

__all__ = ["StoredFile", "RawSender", "PendingThrottle", "dataset_offset", "PENDING_INTERVAL_S"]

log = logging.getLogger(__name__)

PENDING_INTERVAL_S = 0.25
_C_STORE_RQ = 0x0001
_DATASET_PRESENT = 0x0001  # anything but 0x0101 (PS3.7 E.1-1)
# While a response is awaited, pynetdicom's network thread polls the socket this often
# instead of every millisecond: the wait is most of a sub-operation's time otherwise.
_FAST_POLL_S = 0.00005


def _element(group: int, elem: int, value: bytes) -> bytes:
    """One Implicit VR Little Endian element (PS3.5 7.1.3)."""
    return struct.pack("<HHI", group, elem, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


class StoredFile(Dataset):
    """A sub-operation placeholder: the UIDs pynetdicom reads (to count and list failures),
    left undecoded, plus the stored instance it stands for."""

    def __init__(self, ref: InstanceRef) -> None:
        super().__init__()
        for tag, uid in ((0x00080016, ref.sop_class_uid), (0x00080018, ref.sop_instance_uid)):
            value = _uid(uid)
            self[tag] = RawDataElement(Tag(tag), "UI", len(value), value, 0, True, True)
        self.stored = ref


def dataset_offset(head: bytes) -> int | None:
    """Where the data set starts in a Part 10 file whose first bytes are ``head``: after the
    preamble, ``DICM`` and the File Meta group, whose (0002,0000) length says how long it is."""
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        return None
    return 144 + int.from_bytes(head[140:144], "little")


def _command(ref: InstanceRef, msg_id: int, priority: int, originator_aet: str | None, originator_id: int | None) -> bytes:
    """The C-STORE-RQ command set (PS3.7 9.3.1.1), Implicit VR Little Endian, group length
    first: written directly, as encoding it through pydicom costs more than sending the image."""
    body = [
        _element(0x0000, 0x0002, _uid(ref.sop_class_uid)),
        _element(0x0000, 0x0100, struct.pack("<H", _C_STORE_RQ)),
        _element(0x0000, 0x0110, struct.pack("<H", msg_id)),
        _element(0x0000, 0x0700, struct.pack("<H", priority)),
        _element(0x0000, 0x0800, struct.pack("<H", _DATASET_PRESENT)),
        _element(0x0000, 0x1000, _uid(ref.sop_instance_uid)),
    ]
    if originator_aet:
        aet = originator_aet.encode("ascii")
        body.append(_element(0x0000, 0x1030, aet + b" " if len(aet) % 2 else aet))
    if originator_id is not None:
        body.append(_element(0x0000, 0x1031, struct.pack("<H", originator_id)))
    data = b"".join(body)
    return _element(0x0000, 0x0000, struct.pack("<I", len(data))) + data


def _pdus(context_id: int, command: bytes, data: memoryview, max_pdu: int) -> bytes:
    """P-DATA-TF PDUs, one PDV each: the command (last fragment, 0x03), then the data set in
    fragments (0x00, last 0x02) no longer than the peer's maximum PDU length allows."""
    chunk = (max_pdu - 6) if max_pdu else max(len(data), 1)
    parts: list[bytes | memoryview] = [
        struct.pack(">BxIIBB", 0x04, len(command) + 6, len(command) + 2, context_id, 0x03),
        command,
    ]
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        last = start + chunk >= len(data)
        parts.append(struct.pack(">BxIIBB", 0x04, len(piece) + 6, len(piece) + 2, context_id, 0x02 if last else 0x00))
        parts.append(piece)
    return b"".join(parts)


class RawSender:
    """``send_c_store`` (and ``dul.send_pdu``) for one association while sub-operations run:
    :class:`StoredFile` placeholders are sent raw, anything else by pynetdicom."""

    def __init__(self, assoc: Association, own_reads: bool) -> None:
        self.assoc: Any = assoc
        self.poll_s: float = assoc.dul._run_loop_delay
        self.queue_pdu: Callable[[Any], None] = assoc.dul.send_pdu
        self.pynetdicom_send: Callable[..., Dataset] = assoc.send_c_store
        self.socket: socket.socket = assoc.dul.socket.socket
        self.reader = ResponseReader(assoc) if own_reads else None

    @classmethod
    def install(cls, assoc: Association, own_reads: bool = False) -> RawSender | None:
        """Take over ``assoc``'s C-STORE requests and P-DATA writes (and, with ``own_reads``,
        the reading of their responses); None where it cannot."""
        current = assoc.__dict__.get("send_c_store")
        sender = current if isinstance(current, RawSender) else None
        if sender is None:
            sock = getattr(assoc.dul.socket, "socket", None)
            internals = all(hasattr(assoc, a) for a in ("_reactor_checkpoint", "_is_paused")) and hasattr(
                assoc.dul, "_run_loop_delay"
            )
            if type(sock) is not socket.socket or not internals:  # an SSLSocket has its own reader state
                log.info("raw sub-operations unavailable on this association; pynetdicom sends")
                return None
            sender = cls(assoc, own_reads)
            assoc.send_c_store = sender  # type: ignore[method-assign]
        assoc.dul.send_pdu = sender.send_pdu  # type: ignore[method-assign]
        return sender

    def send_pdu(self, primitive: Any) -> None:
        """P-DATA is written now, by the calling thread (the one sending sub-operations), so
        that two threads never write to the socket; anything else goes pynetdicom's way."""
        if not isinstance(primitive, P_DATA):
            self.queue_pdu(primitive)
            return
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        self.socket.sendall(pdu.encode())

    def _context_id(self, sop_class: str, transfer_syntax: str) -> int | None:
        for cx in self.assoc.accepted_contexts:
            if cx.abstract_syntax == sop_class and cx.transfer_syntax[0] == transfer_syntax and cx.as_scu:
                return int(cx.context_id)
        return None

    def __call__(
        self,
        dataset: Dataset | str | Path,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        ref: InstanceRef | None = getattr(dataset, "stored", None)
        if ref is None:  # a converted dataset: pynetdicom encodes it (its P-DATA still comes here)
            return self.pynetdicom_send(dataset, msg_id, priority, originator_aet, originator_id)
        if not self.assoc.is_established:  # aborted by an earlier failure: fail the rest at once
            raise ConnectionError("the sub-operation association is gone")
        context_id = self._context_id(ref.sop_class_uid, ref.transfer_syntax)
        if context_id is None:
            raise ValueError(f"no accepted context for {ref.sop_class_uid} in {ref.transfer_syntax}")
        data = Path(ref.path).read_bytes()  # OSError: pynetdicom counts a failed sub-operation
        offset = dataset_offset(data[:144])
        if offset is None:
            raise ValueError("stored file is not DICOM Part 10 with a File Meta group length")
        command = _command(ref, msg_id, priority, originator_aet, originator_id)
        message = _pdus(context_id, command, memoryview(data)[offset:], self.assoc.dimse.maximum_pdu_size)
        if self.reader is not None and (self.reader.active or self.reader.take()):
            return self._exchange_reading(message, msg_id)
        return self._exchange(message)

    def _exchange_reading(self, message: bytes, msg_id: int) -> Dataset:
        """Send and read the response here. Anything unexpected ends the association: the
        byte stream can no longer be trusted to be in step."""
        assert self.reader is not None
        try:
            self.socket.sendall(message)
            code = self.reader.status(msg_id)
        except OSError:  # SubOperationError and timeouts included
            self.reader.give_back()
            self.assoc.abort()
            raise
        status = Dataset()
        status.Status = code
        return status

    def _exchange(self, message: bytes) -> Dataset:
        """Send, then wait for pynetdicom to read the response, as its own send_c_store does,
        with the association's reactor paused so that it cannot take the response. The
        reactor stays paused between sub-operations (pausing costs up to a reactor tick)
        until :meth:`resume`, or pynetdicom's own release or abort."""
        assoc = self.assoc
        if assoc._reactor_checkpoint.is_set():
            pause_reactor(assoc)
            assoc.dul._run_loop_delay = _FAST_POLL_S
        self.socket.sendall(message)
        _, rsp = assoc.dimse.get_msg(block=True)
        status = Dataset()
        if rsp is None:  # DIMSE timeout: what pynetdicom does then
            assoc.abort()
            return status
        status.Status = rsp.Status
        return status

    def resume(self) -> None:
        """Sub-operations are over: pynetdicom writes, reads and polls as usual again."""
        assoc = self.assoc
        if self.reader is not None:
            self.reader.give_back()
        assoc.dul.__dict__.pop("send_pdu", None)
        assoc.dul._run_loop_delay = self.poll_s
        resume_reactor(assoc)


class PendingThrottle:
    """Installed as ``dimse.send_msg`` of the association a C-MOVE/C-GET came on: drops a
    pending response sent within ``interval_s`` of the previous one; passes the rest."""

    def __init__(self, assoc: Association, interval_s: float = PENDING_INTERVAL_S) -> None:
        self.dimse: Any = assoc.dimse
        self.send_msg: Callable[[Any, int], None] = assoc.dimse.send_msg
        self.interval_s = interval_s
        self.last = 0.0
        self.dimse.send_msg = self

    def __call__(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, (C_MOVE, C_GET)) and primitive.Status in (0xFF00, 0xFF01):
            now = time.monotonic()
            if now - self.last < self.interval_s:
                return
            self.last = now
        self.send_msg(primitive, context_id)

    def remove(self) -> None:
        self.dimse.__dict__.pop("send_msg", None)
