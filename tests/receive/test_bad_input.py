"""Bad input gets the documented status and a log line; the node keeps serving."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, RTDoseStorage, Verification

from dicom_node.config import load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.synthetic import ct_series, write_series
from tests.conftest import dcmtk, require


def _send_raw(port: int, path: Path) -> int:
    """C-STORE the file's bytes exactly as they are (no decoding), returning the status."""
    ae = AE(ae_title="BADSENDER")
    ae.add_requested_context(CTImageStorage)
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


def test_uid_path_traversal_stays_inside_the_store(node_server, ct_file):
    ds = dcmread(ct_file)
    ds.SOPInstanceUID = "../../../../escaped"
    ds.SeriesInstanceUID = "/etc"
    assert _send(node_server.port, ds) == 0x0000
    node_server.writer.flush()
    [stored] = list(node_server.store.iter_files())
    assert node_server.store.root in stored.parents
    assert ".." not in stored.parts and "etc" not in stored.parts
    assert str(dcmread(stored).SOPInstanceUID) == "../../../../escaped"


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
