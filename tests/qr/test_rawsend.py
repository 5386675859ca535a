"""The hand-written C-STORE encoding of the raw sub-operation path equals pynetdicom's."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF

from dicom_node.qr.query import InstanceRef
from dicom_node.qr.rawsend import _command, _pdus, dataset_offset
from dicom_node.synthetic import StudySpec, ct_series, write_series

REF = InstanceRef(1, "1.2.3.45", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", "/unused")


def test_command_set_matches_pynetdicom():
    primitive = C_STORE()
    primitive.MessageID, primitive.Priority = 7, 2
    primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID = REF.sop_class_uid, REF.sop_instance_uid
    primitive.MoveOriginatorApplicationEntityTitle, primitive.MoveOriginatorMessageID = "ABC", 3
    primitive.DataSet = BytesIO(b"\x00\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    assert _command(REF, 7, 2, "ABC", 3) == encode(message.command_set, True, True)


def test_pdus_fragment_within_the_peer_maximum():
    command, data = b"C" * 10, bytes(range(256)) * 100
    stream, fragments, pos = _pdus(5, command, memoryview(data), max_pdu=4096), [], 0
    while pos < len(stream):
        length = int.from_bytes(stream[pos + 2 : pos + 6], "big")
        assert length <= 4096
        pdu = P_DATA_TF()
        pdu.decode(stream[pos : pos + 6 + length])
        fragments += [(item.context_id, item.presentation_data_value) for item in pdu.presentation_data_value_items]
        pos += 6 + length
    assert fragments[0] == (5, b"\x03" + command)
    assert [f[1][0] for f in fragments[1:]] == [0x00] * (len(fragments) - 2) + [0x02]
    assert b"".join(f[1][1:] for f in fragments[1:]) == data


def test_dataset_offset_points_past_the_file_meta(tmp_path: Path):
    [path] = write_series(ct_series(StudySpec(), shape=(1, 8, 8), lesion_radius=None), tmp_path)
    raw = path.read_bytes()
    offset = dataset_offset(raw[:144])
    assert offset is not None
    ds = dcmread(path)
    assert raw[offset : offset + 4] == b"\x08\x00\x05\x00"  # (0008,0005) SpecificCharacterSet first
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert dataset_offset(b"\x00" * 200) is None
