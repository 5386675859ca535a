"""The fast path's own encodings are byte for byte pynetdicom's, and it takes only commands
pynetdicom would decode without a word."""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from dicom_node.receive.wire import (
    StoreRequest,
    command_fields,
    file_meta,
    store_request,
    store_response,
)


@pytest.mark.parametrize("instance", ["1.2.3.4", "1.2.3.45", "1.2.826.0.1.3680043.8.498." + "1" * 38])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless])
def test_file_meta_is_pynetdicoms(instance, syntax):
    expected = io.BytesIO()
    expected.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(expected, create_file_meta(sop_class_uid=CTImageStorage, sop_instance_uid=instance, transfer_syntax=syntax))
    assert file_meta(CTImageStorage, instance, syntax) == expected.getvalue()


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xA900, 0xC000, 0x0122])
@pytest.mark.parametrize("max_pdu", [0, 16384, 60, 7])
@pytest.mark.parametrize("instance", ["1.2.3.4", "1.2.3.45"])
def test_store_response_is_pynetdicoms(status, max_pdu, instance):
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo, rsp.Status = 7, status
    rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = MRImageStorage, instance
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    expected = b""
    for primitive in message.encode_msg(3, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        expected += pdu.encode()
    assert store_response(StoreRequest(3, 7, MRImageStorage, instance), status, max_pdu) == expected


def _request_fields(**changes: object) -> dict[int, bytes]:
    rq = C_STORE()
    rq.MessageID, rq.Priority = 9, 2
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = CTImageStorage, "1.2.3.4"
    rq.MoveOriginatorApplicationEntityTitle, rq.MoveOriginatorMessageID = "PACS", 4
    rq.DataSet = io.BytesIO(b"\x00\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(rq)
    command = next(iter(message.encode_msg(1, 0))).presentation_data_value_list[0][1][1:]
    fields = command_fields(bytes(command))
    assert fields is not None
    for elem, value in changes.items():
        if value is None:
            del fields[int(elem, 16)]
        else:
            fields[int(elem, 16)] = value  # type: ignore[assignment]
    return fields


def test_a_plain_store_request_is_taken():
    assert store_request(_request_fields(), 5) == StoreRequest(5, 9, CTImageStorage, "1.2.3.4")


@pytest.mark.parametrize(
    "changes",
    [
        {"0x0100": struct.pack("<H", 0x0030)},  # C-ECHO-RQ
        {"0x0800": struct.pack("<H", 0x0101)},  # no data set
        {"0x0700": struct.pack("<H", 3)},  # invalid priority
        {"0x1000": b"../../x\x00"},  # not a UID: pynetdicom logs and decides
        {"0x1000": b"1.2.03\x00\x00"},  # leading zero
        {"0x1000": b"1." + b"2" * 64},  # too long
        {"0x1000": None},  # missing
        {"0x0110": b"\x01"},  # malformed US
        {"0x0900": struct.pack("<H", 0)},  # an element a request does not carry
    ],
)
def test_anything_unusual_is_left_to_pynetdicom(changes):
    assert store_request(_request_fields(**changes), 1) is None


def test_command_fields_refuses_malformed_commands():
    assert command_fields(b"\x00\x00\x00\x01\x02\x00\x00\x00ab") is not None
    assert command_fields(b"\x00\x00\x00\x01\x09\x00\x00\x00ab") is None  # value runs past the end
    assert command_fields(b"\x08\x00\x18\x00\x02\x00\x00\x00ab") is None  # not group 0000
    assert command_fields(b"\x00\x00\x00\x01\x00\x00\x00\x00" * 2) is None  # repeated element
