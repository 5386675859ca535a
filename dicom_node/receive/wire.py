"""The few DICOM Upper Layer and DIMSE encodings the C-STORE fast path reads and writes itself.

- P-DATA-TF PDUs and their presentation data values (PS3.8 9.3.5, E.2);
- the C-STORE-RQ command set, Implicit VR Little Endian (PS3.7 9.3.1.1, E.1);
- the C-STORE-RSP command set (PS3.7 9.3.1.2), encoded element for element as pynetdicom
  encodes it;
- the File Meta Information pynetdicom writes before a received data set (PS3.10 7.1).

Anything the fast path does not recognise exactly here is left to pynetdicom, so these
functions answer ``None`` rather than guess.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    _config,
)

__all__ = [
    "P_DATA_TF",
    "StoreRequest",
    "command_fields",
    "file_meta",
    "pdu_header",
    "store_request",
    "store_response",
]

P_DATA_TF = 0x04
_C_STORE_RQ = 0x0001
_C_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101  # (0000,0800) value meaning "no data set" (PS3.7 E.1-1)
# Elements a C-STORE-RQ may carry (PS3.7 9.3.1.1): group length, affected SOP class, command
# field, message ID, priority, data set type, affected SOP instance, move originator AE/ID.
_STORE_RQ_ELEMENTS = frozenset({0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000, 0x1030, 0x1031})
_US_ELEMENTS = (0x0100, 0x0110, 0x0700, 0x0800)
# A conformant UID (PS3.5 9.1): what pynetdicom accepts without a word when it enforces
# conformance; anything else is left to pynetdicom, which logs or refuses it.
_UID = re.compile(rb"^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*$")


def pdu_header(pdu_type: int, length: int) -> bytes:
    """PDU type, reserved byte, 4-byte big-endian length (PS3.8 9.3.1)."""
    return struct.pack(">BxI", pdu_type, length)


def command_fields(command: bytes) -> dict[int, bytes] | None:
    """(0000,eeee) element number → value of an Implicit VR Little Endian command set, or None
    if it holds anything but group 0000 elements that end exactly where the command ends."""
    fields: dict[int, bytes] = {}
    pos, end = 0, len(command)
    while pos < end:
        if pos + 8 > end:
            return None
        group, elem, length = struct.unpack_from("<HHI", command, pos)
        pos += 8
        if group != 0x0000 or pos + length > end or elem in fields:
            return None
        fields[elem] = command[pos : pos + length]
        pos += length
    return fields


@dataclass(frozen=True)
class StoreRequest:
    """The parts of a C-STORE-RQ the fast path uses."""

    context_id: int
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str


def _uid(value: bytes | None) -> str | None:
    if value is None:
        return None
    stripped = value.rstrip(b"\x00 ")
    if not 0 < len(stripped) <= 64 or not _UID.match(stripped):
        return None
    return stripped.decode("ascii")


def store_request(fields: dict[int, bytes], context_id: int) -> StoreRequest | None:
    """A C-STORE-RQ with a data set, whose every element is one pynetdicom would decode without
    complaint, or None (another command, or a request pynetdicom should judge)."""
    if not fields.keys() <= _STORE_RQ_ELEMENTS or _config.UNRESTRICTED_STORAGE_SERVICE:
        return None
    if any(len(fields.get(elem, b"")) != 2 for elem in _US_ELEMENTS):
        return None
    if 0x1031 in fields and len(fields[0x1031]) != 2:
        return None
    command, message_id, priority, data_set = (int.from_bytes(fields[e], "little") for e in _US_ELEMENTS)
    if command != _C_STORE_RQ or data_set == _NO_DATA_SET or priority not in (0, 1, 2):
        return None
    sop_class, sop_instance = _uid(fields.get(0x0002)), _uid(fields.get(0x1000))
    if sop_class is None or sop_instance is None:
        return None
    return StoreRequest(context_id, message_id, sop_class, sop_instance)


def _element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, elem, len(value)) + value


def _padded_uid(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def store_response(request: StoreRequest, status: int, max_pdu: int) -> bytes:
    """The C-STORE-RSP to ``request`` as the P-DATA-TF PDUs pynetdicom would send: one PDV per
    PDU, the command split into fragments of at most ``max_pdu`` - 6 bytes (0: one fragment)."""
    body = b"".join(
        (
            _element(0x0002, _padded_uid(request.sop_class_uid)),
            _element(0x0100, struct.pack("<H", _C_STORE_RSP)),
            _element(0x0120, struct.pack("<H", request.message_id)),
            _element(0x0800, struct.pack("<H", _NO_DATA_SET)),
            _element(0x0900, struct.pack("<H", status)),
            _element(0x1000, _padded_uid(request.sop_instance_uid)),
        )
    )
    command = _element(0x0000, struct.pack("<I", len(body))) + body
    size = max_pdu - 6 if max_pdu else len(command)
    pieces = [command[start : start + size] for start in range(0, len(command), size)]
    out = []
    for n, piece in enumerate(pieces):
        flags = 0x03 if n == len(pieces) - 1 else 0x01
        out.append(pdu_header(P_DATA_TF, len(piece) + 6) + struct.pack(">IBB", len(piece) + 2, request.context_id, flags))
        out.append(piece)
    return b"".join(out)


def _meta_element(elem: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH", 0x0002, elem) + vr + struct.pack("<HI", 0, len(value)) + value
    return struct.pack("<HH", 0x0002, elem) + vr + struct.pack("<H", len(value)) + value


_IMPLEMENTATION = _meta_element(0x0012, b"UI", _padded_uid(PYNETDICOM_IMPLEMENTATION_UID)) + _meta_element(
    0x0013,
    b"SH",
    PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii") + b" " * (len(PYNETDICOM_IMPLEMENTATION_VERSION) % 2),
)


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, ``DICM`` and the File Meta group, byte for byte what pynetdicom writes before
    a data set it streams to a file (``create_file_meta`` + ``write_file_meta_info``)."""
    group = b"".join(
        (
            _meta_element(0x0001, b"OB", b"\x00\x01"),
            _meta_element(0x0002, b"UI", _padded_uid(sop_class_uid)),
            _meta_element(0x0003, b"UI", _padded_uid(sop_instance_uid)),
            _meta_element(0x0010, b"UI", _padded_uid(transfer_syntax)),
            _IMPLEMENTATION,
        )
    )
    return b"\x00" * 128 + b"DICM" + _meta_element(0x0000, b"UL", struct.pack("<I", len(group))) + group
