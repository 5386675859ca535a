"""C-ECHO/C-STORE against a real node with DCMTK and pynetdicom: every transfer syntax and
modality family arrives byte-identical, durable and indexed."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pydicom.uid import generate_uid
from pynetdicom import AE

from dicom_node.receive.contexts import STORAGE_SOP_CLASSES
from dicom_node.synthetic import StudySpec, ct_series, mr_series, write_series, xray_instance
from tests.conftest import dcmtk, require



def _dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the File Meta Information (which the receiver rewrites)."""
    data = path.read_bytes()
    meta_len = int.from_bytes(data[140:144], "little")  # (0002,0000) group length value
    return data[144 + meta_len :]


def test_echo_with_echoscu(node_server):
    require("echoscu")
    result = dcmtk("echoscu", "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port))
    assert result.returncode == 0, result.stderr


def test_storescu_series_is_stored_byte_identical_and_indexed(node_server, tmp_path):
    require("storescu")
    files = write_series(ct_series(seed=3), tmp_path / "ct")
    result = dcmtk("storescu", "-aet", "CT_SCANNER", "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port), *map(str, files))
    assert result.returncode == 0, result.stderr
    assert node_server.writer.flush()
    [study] = node_server.index.studies()
    assert study.instances == len(files) and study.modalities == "CT"
    for src in files:
        ds = dcmread(src, stop_before_pixels=True)
        stored = node_server.store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert _dataset_bytes(stored) == _dataset_bytes(src)
    assert not list(node_server.store.incoming.iterdir()), "no partial files left behind"


def _to_8bit(path: Path) -> None:
    """JPEG baseline carries 8-bit samples only: rewrite the image as 8-bit."""
    ds = dcmread(path)
    ds.PixelData = (ds.pixel_array >> 4).astype("uint8").tobytes()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.save_as(path)


@pytest.mark.parametrize(
    "syntax, encoder, propose",
    [
        (ImplicitVRLittleEndian, ["dcmconv", "+ti"], "-xi"),
        (ExplicitVRBigEndian, ["dcmconv", "+tb"], "-xb"),
        (DeflatedExplicitVRLittleEndian, ["dcmconv", "+td"], "-xd"),
        (JPEGBaseline8Bit, ["dcmcjpeg", "+eb"], "-xy"),
        (JPEGExtended12Bit, ["dcmcjpeg", "+ee"], "-xx"),
        (JPEGLosslessSV1, ["dcmcjpeg", "+e1"], "-xs"),
        (JPEGLSLossless, ["dcmcjpls", "+el"], "-xt"),
        (JPEGLSNearLossless, ["dcmcjpls", "+en"], "-xu"),
        (RLELossless, ["dcmcrle"], "-xr"),
        (JPEG2000Lossless, None, "-xv"),  # DCMTK has no JPEG 2000 encoder: pydicom + openjpeg
        (JPEG2000, None, "-xw"),
    ],
)
def test_every_transfer_syntax_arrives_intact(node_server, tmp_path, syntax, encoder, propose):
    require("storescu", "dcmconv", "dcmcjpeg", "dcmcjpls", "dcmcrle")
    [src] = write_series([xray_instance(size=64, seed=5)], tmp_path / "src")
    if syntax == JPEGBaseline8Bit:
        _to_8bit(src)
    encoded = tmp_path / "encoded.dcm"
    if encoder is None:
        ds = dcmread(src)
        ds.compress(syntax, **({} if syntax == JPEG2000Lossless else {"j2k_psnr": [50]}))
        ds.save_as(encoded)
    else:
        result = dcmtk(*encoder, str(src), str(encoded))
        assert result.returncode == 0, result.stderr
    ds = dcmread(encoded, stop_before_pixels=True)
    assert str(ds.file_meta.TransferSyntaxUID) == syntax
    result = dcmtk("storescu", "-R", propose, "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port), str(encoded))
    assert result.returncode == 0, result.stderr
    node_server.writer.flush()
    stored = node_server.store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert str(dcmread(stored, stop_before_pixels=True).file_meta.TransferSyntaxUID) == syntax
    if syntax == DeflatedExplicitVRLittleEndian:
        # storescu deflates again as it sends, so the deflate stream (and its padding) may
        # differ from the file's; what it carries must not.
        assert _inflate(_dataset_bytes(stored)) == _inflate(_dataset_bytes(encoded))
    else:
        assert _dataset_bytes(stored) == _dataset_bytes(encoded)


def _inflate(data: bytes) -> bytes:
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data)


def test_modality_families_via_pynetdicom(node_server, tmp_path):
    study = StudySpec()
    datasets = [*ct_series(study, shape=(3, 32, 32), lesion_radius=None), *mr_series(study, shape=(3, 32, 32), lesion_radius=None)]
    datasets += [xray_instance(study, size=32), xray_instance(study, size=32, modality="CR", monochrome1=True)]
    ae = AE(ae_title="PYNETDICOM")
    for uid in STORAGE_SOP_CLASSES.values():
        ae.add_requested_context(uid)
    assoc = ae.associate("127.0.0.1", node_server.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()
    assert statuses == [0] * len(datasets)
    node_server.writer.flush()
    [summary] = node_server.index.studies()
    assert summary.modalities == "CR\\CT\\DX\\MR" and summary.instances == len(datasets)


def test_every_accepted_sop_class_is_stored(node_server):
    """One (minimal) instance of every storage SOP class the node accepts: SR, SEG, KOS, PDF…"""
    study = StudySpec()
    base = ct_series(study, shape=(1, 8, 8), lesion_radius=None)[0]
    ae = AE(ae_title="PYNETDICOM")
    for uid in STORAGE_SOP_CLASSES.values():
        ae.add_requested_context(uid)
    assoc = ae.associate("127.0.0.1", node_server.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    sent = []
    try:
        for name, uid in STORAGE_SOP_CLASSES.items():
            ds = base.copy()
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.SeriesInstanceUID = generate_uid()
            assert assoc.send_c_store(ds).Status == 0, name
            sent.append(ds.SOPInstanceUID)
    finally:
        assoc.release()
    node_server.writer.flush()
    assert set(node_server.index.indexed_paths().values()) == set(sent)
