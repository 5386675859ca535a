"""Reading C-STORE responses on a C-MOVE's sub-operation association ourselves.

On that association the peer only ever answers our C-STORE requests, so while sub-operations
run the sending thread can read each C-STORE-RSP straight from the socket (PS3.8 9.3.5,
PS3.7 9.3.1.2) instead of waiting for pynetdicom's network thread to poll, decode and queue
it; that wait and decode were a third of a sub-operation's cost.

pynetdicom's network thread must stop reading first: its socket wrapper is swapped for a
:class:`Blindfold` that says no data is ever ready (and forwards everything else, so an
abort still goes out), and the hand-over waits until that thread has polled the blindfold
twice, i.e. it is no longer inside a read of the real socket. :meth:`ResponseReader.give_back`
restores the wrapper.

Not used for C-GET: there the requestor may send C-CANCEL on the same association, which
pynetdicom must see.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from dicom_node.net import Blindfold

__all__ = ["ResponseReader", "SubOperationError"]

_C_STORE_RSP = 0x8001
_HANDOVER_TIMEOUT_S = 2.0


class SubOperationError(ConnectionError):
    """The peer sent something other than a C-STORE response, or went away."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise SubOperationError("the peer closed the connection")
        got += n
    return bytes(buf)


def _command_fields(command: bytes) -> dict[int, bytes]:
    """(0000,eeee) element → value, from an Implicit VR Little Endian command set."""
    fields, pos = {}, 0
    while pos + 8 <= len(command):
        _group, elem, length = struct.unpack_from("<HHI", command, pos)
        fields[elem] = command[pos + 8 : pos + 8 + length]
        pos += 8 + length
    return fields


class ResponseReader:
    """Takes the reads of ``assoc``'s socket from pynetdicom, reads C-STORE-RSPs, gives back."""

    def __init__(self, assoc: Any) -> None:
        self.assoc = assoc
        self.wrapper = assoc.dul.socket
        self.socket: socket.socket = self.wrapper.socket
        self.active = False

    def take(self) -> bool:
        """Stop pynetdicom reading; False (and nothing changed) if its thread did not let go."""
        blindfold = Blindfold(self.wrapper)
        self.assoc.dul.socket = blindfold
        if not blindfold.handed_over.wait(_HANDOVER_TIMEOUT_S):
            self.assoc.dul.socket = self.wrapper
            return False
        self.socket.settimeout(self.assoc.dimse_timeout)
        self.active = True
        return True

    def give_back(self) -> None:
        if self.active:
            self.socket.settimeout(None)
            self.assoc.dul.socket = self.wrapper
            self.assoc.dul._idle_timer.restart()
            self.active = False

    def status(self, msg_id: int) -> int:
        """Read one C-STORE-RSP (its command may span PDVs and PDUs) and return its Status."""
        command = bytearray()
        complete = False
        while not complete:
            header = _recv_exact(self.socket, 6)
            pdu_type, length = header[0], int.from_bytes(header[2:6], "big")
            body = _recv_exact(self.socket, length)
            if pdu_type != 0x04:
                raise SubOperationError(f"the peer sent PDU type 0x{pdu_type:02X} instead of a C-STORE response")
            pos = 0
            while pos < length:
                item = int.from_bytes(body[pos : pos + 4], "big")
                flags = body[pos + 5]
                if flags & 0x01:  # command fragment; 0x02 marks the last one
                    command += body[pos + 6 : pos + 4 + item]
                    complete = complete or bool(flags & 0x02)
                pos += 4 + item
        fields = _command_fields(bytes(command))
        field = int.from_bytes(fields.get(0x0100, b""), "little")
        answered = int.from_bytes(fields.get(0x0120, b""), "little")
        if field != _C_STORE_RSP or answered != msg_id or 0x0900 not in fields:
            raise SubOperationError(f"unexpected response (command 0x{field:04X} to message {answered})")
        self.assoc.dul._idle_timer.restart()
        return int.from_bytes(fields[0x0900], "little")
