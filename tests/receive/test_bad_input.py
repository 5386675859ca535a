"""Bad input gets the documented status and a log line; the node keeps serving."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, RTDoseStorage, Verification

from dicom_node.config import load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.receive.wire import file_meta
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, require
from tests.receive.mutate import Element, encode, walk

BITS_ALLOCATED, BITS_STORED, PIXEL_DATA = 0x00280100, 0x00280101, 0x7FE00010


def _send_raw(port: int, path: Path) -> int:
    """C-STORE the file's bytes exactly as they are (no decoding), returning the status."""
    meta = read_file_meta_info(path)
    ae = AE(ae_title="BADSENDER")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    assert assoc.is_established
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()


def _send(port: int, ds) -> int:
    ae = AE(ae_title="BADSENDER")
    ae.add_requested_context(ds.SOPClassUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def _still_serving(port: int) -> bool:
    ae = AE()
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port)
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    return ok


@pytest.fixture
def ct_file(tmp_path: Path) -> Path:
    return write_series(ct_series(shape=(1, 32, 32), lesion_radius=None), tmp_path / "src")[0]


def test_truncated_dataset_is_refused_with_c000(node_server, ct_file, caplog):
    data = ct_file.read_bytes()
    ct_file.write_bytes(data[: len(data) - 500])
    with caplog.at_level(logging.WARNING):
        assert _send_raw(node_server.port, ct_file) == 0xC000
    assert "truncated" in caplog.text
    assert not list(node_server.store.iter_files())
    assert _still_serving(node_server.port)


def test_garbage_after_the_preamble_is_refused_with_c000(node_server, ct_file, caplog):
    ds = dcmread(ct_file, stop_before_pixels=True)
    meta_end = 144 + int.from_bytes(ct_file.read_bytes()[140:144], "little")
    ct_file.write_bytes(ct_file.read_bytes()[:meta_end] + bytes(range(256)) * 8)
    with caplog.at_level(logging.WARNING):
        assert _send_raw(node_server.port, ct_file) == 0xC000
    assert ds.SOPInstanceUID in caplog.text
    assert _still_serving(node_server.port)


def test_missing_sop_instance_uid_is_refused_with_a900(node_server, ct_file, caplog):
    ds = dcmread(ct_file)
    del ds.SeriesInstanceUID
    with caplog.at_level(logging.WARNING):
        assert _send(node_server.port, ds) == 0xA900
    assert "lacks SeriesInstanceUID" in caplog.text
    assert _still_serving(node_server.port)


def test_dataset_of_another_sop_class_is_refused_with_a900(node_server, ct_file):
    ds = dcmread(ct_file)
    ds.SOPClassUID = RTDoseStorage  # the request will still say CT Image Storage
    ds.save_as(ct_file)
    assert _send_raw(node_server.port, ct_file) == 0xA900


def test_uid_that_is_a_path_is_refused_with_a900_and_nothing_is_written(node_server, ct_file, caplog):
    ds = dcmread(ct_file)
    ds.SOPInstanceUID = "../../../../escaped"
    ds.SeriesInstanceUID = "/etc"
    with caplog.at_level(logging.WARNING):
        assert _send(node_server.port, ds) == 0xA900
    assert "is not a valid UID" in caplog.text
    root = node_server.store.root.parent
    assert not list(node_server.store.iter_files()) and not list(root.parent.rglob("escaped*"))


def test_unsupported_sop_class_context_is_rejected_and_node_serves_on(node_server, tmp_path):
    require("storescu")
    ds = ct_series(shape=(1, 16, 16), lesion_radius=None)[0]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTDoseStorage
    path = tmp_path / "rtdose.dcm"
    ds.save_as(path)
    result = dcmtk("storescu", "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port), str(path))
    assert result.returncode != 0
    assert "No presentation context" in result.stderr or "no presentation context" in result.stderr.lower()
    assert _still_serving(node_server.port)


def test_out_of_disk_space_answers_a700(tmp_path, ct_file, caplog):
    settings = load_settings(data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=10**9)
    server = NodeServer(settings, qr=False)
    server.start()
    try:
        with caplog.at_level(logging.ERROR):
            assert _send(server.port, dcmread(ct_file)) == 0xA700
        assert "MB free" in caplog.text
        assert _still_serving(server.port)
    finally:
        server.stop()


def test_unknown_calling_ae_gets_associate_rj(tmp_path):
    require("echoscu")
    settings = load_settings(
        data_dir=tmp_path / "node", port=0, host="127.0.0.1", allowed_peers=[{"ae_title": "FRIEND"}, {"ae_title": "PINNED", "host": "10.9.9.9"}]
    )
    server = NodeServer(settings, qr=False)
    server.start()
    try:
        port = str(server.port)
        assert dcmtk("echoscu", "-aet", "FRIEND", "-aec", "DICOM_NODE", "127.0.0.1", port).returncode == 0
        stranger = dcmtk("echoscu", "-aet", "STRANGER", "-aec", "DICOM_NODE", "127.0.0.1", port)
        assert stranger.returncode != 0 and "Association Rejected" in stranger.stderr
        wrong_host = dcmtk("echoscu", "-aet", "PINNED", "-aec", "DICOM_NODE", "127.0.0.1", port)
        assert wrong_host.returncode != 0 and "Association Rejected" in wrong_host.stderr
        assert dcmtk("echoscu", "-aet", "FRIEND", "-aec", "DICOM_NODE", "127.0.0.1", port).returncode == 0
    finally:
        server.stop()


# -- issue 12: an instance pydicom cannot read in full, UIDs cut or not the request's ----------


def _ct() -> Dataset:
    return ct_series(StudySpec(), shape=(1, 16, 16), lesion_radius=None)[0]


Damage = Callable[[bytearray, dict[int, Element]], None]


def _damaged(tmp_path: Path, ds: Dataset, damage: Damage, syntax: str = ExplicitVRLittleEndian) -> Path:
    """``ds`` as a Part 10 file, its data set's bytes edited by ``damage`` (given where each
    element is); the File Meta says what the C-STORE request will."""
    implicit = syntax == ImplicitVRLittleEndian
    data = bytearray(encode(ds, implicit))
    damage(data, {e.tag: e for e in walk(bytes(data), implicit)[0]})
    path = tmp_path / "damaged.dcm"
    path.write_bytes(file_meta(ds.SOPClassUID, ds.SOPInstanceUID, syntax) + data)
    return path


def _vr(tag: int, vr: bytes) -> Damage:
    def damage(data: bytearray, at: dict[int, Element]) -> None:
        data[at[tag].offset + 4 : at[tag].offset + 6] = vr

    return damage


def _one_byte_more(tag: int, implicit: bool = False) -> Damage:
    """A byte added to ``tag``'s value and to its length: the element stream stays well formed."""

    def damage(data: bytearray, at: dict[int, Element]) -> None:
        element = at[tag]
        if implicit:
            data[element.value - 4 : element.value] = struct.pack("<I", element.length + 1)
        else:
            data[element.value - 2 : element.value] = struct.pack("<H", element.length + 1)
        data[element.value : element.value] = b"\x00"

    return damage


def _refused(port: int, path: Path, status: int, caplog: pytest.LogCaptureFixture, node_server: NodeServer) -> str:
    with caplog.at_level(logging.WARNING):
        assert _send_raw(port, path) == status
    assert not list(node_server.store.iter_files())
    assert "failed unexpectedly" not in caplog.text
    assert _still_serving(port)
    return caplog.text


def test_unknown_vr_of_an_element_the_index_does_not_read_is_refused_with_c000(node_server, tmp_path, caplog):
    """Issue 12: a CT whose (0028,0100) was WS got 0x0000, and every router round failed on it."""
    path = _damaged(tmp_path, _ct(), _vr(BITS_ALLOCATED, b"WS"))
    assert "Unknown Value Representation 'WS'" in _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_number_of_a_length_no_whole_values_fill_is_refused_with_c000(node_server, tmp_path, caplog):
    path = _damaged(tmp_path, _ct(), _one_byte_more(BITS_STORED))
    assert "BytesLengthException" in _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_unknown_vr_inside_a_sequence_item_is_refused_with_c000(node_server, tmp_path, caplog):
    ds = _ct()
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ds.SOPClassUID, "1.2.3.4"
    ds.ReferencedImageSequence = Sequence([item])
    path = _damaged(tmp_path, ds, _vr(0x00081155, b"WS"))  # Referenced SOP Instance UID, in the item
    _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_private_element_too_long_for_its_private_dictionary_vr_is_refused_with_c000(node_server, tmp_path, caplog):
    """Implicit VR: pydicom converts (0019,xx0A) of 'SIEMENS MR HEADER' as US."""
    ds = _ct()
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", 1)
    path = _damaged(tmp_path, ds, _one_byte_more(0x0019100A, implicit=True), ImplicitVRLittleEndian)
    _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_element_header_cut_short_at_the_end_is_refused_with_c000(node_server, tmp_path, caplog):
    """pydicom takes a header cut short for the end of the data set: the instance was stored
    without its Pixel Data."""

    def cut(data: bytearray, at: dict[int, Element]) -> None:
        del data[at[PIXEL_DATA].offset + 6 :]

    path = _damaged(tmp_path, _ct(), cut)
    assert "truncated" in _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_value_missing_at_the_end_is_refused_with_c000(node_server, tmp_path, caplog):
    def cut(data: bytearray, at: dict[int, Element]) -> None:
        del data[at[PIXEL_DATA].value :]

    path = _damaged(tmp_path, _ct(), cut)
    assert "truncated" in _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_explicit_vr_data_set_sent_as_implicit_vr_is_refused_with_c000(node_server, tmp_path, caplog):
    ds = _ct()
    path = tmp_path / "explicit.dcm"
    path.write_bytes(file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ImplicitVRLittleEndian) + encode(ds, implicit=False))
    assert "not as the transfer syntax" in _refused(node_server.port, path, 0xC000, caplog, node_server)


def test_data_set_sop_instance_uid_other_than_the_requests_is_refused_with_a900(node_server, tmp_path, caplog):
    """PS3.4 B.2.3: the data set's SOP Instance UID must be the Affected SOP Instance UID."""
    ds = _ct()
    path = tmp_path / "other.dcm"
    path.write_bytes(file_meta(ds.SOPClassUID, "1.2.3.4.5.6", ExplicitVRLittleEndian) + encode(ds, implicit=False))
    assert "dataset SOP Instance UID is" in _refused(node_server.port, path, 0xA900, caplog, node_server)


def test_data_set_without_sop_class_uid_is_refused_with_a900(node_server, tmp_path, caplog):
    ds = _ct()
    path = tmp_path / "classless.dcm"
    del ds.SOPClassUID
    path.write_bytes(file_meta(CTImageStorage, ds.SOPInstanceUID, ExplicitVRLittleEndian) + encode(ds, implicit=False))
    assert "dataset SOP class (none)" in _refused(node_server.port, path, 0xA900, caplog, node_server)


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"])
def test_uids_sharing_their_first_64_characters_are_refused_not_cut_into_one(node_server, tmp_path, keyword):
    """Issue 12: each UID was cut to 64 characters, so both instances got 0x0000 and the
    second replaced the first (study and series folders merged alike). DCMTK's storescu sends
    such UIDs as they are."""
    require("storescu")
    prefix = "1.2.826.0.1.3680043.8.498." + "1" * 38  # 64 characters
    files = []
    for k in (1, 2):
        ds = _ct()
        setattr(ds, keyword, f"{prefix}.{k}")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        files.append(tmp_path / f"{k}.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    result = dcmtk("storescu", "-v", "--no-halt", "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port), *map(str, files))
    assert result.stderr.count("Received Store Response (Error: DataSetDoesNotMatchSOPClass)") == 2, result.stderr
    assert not list(node_server.store.iter_files())
    assert _still_serving(node_server.port)
