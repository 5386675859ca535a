"""DCMTK findscu, movescu (to a DCMTK storescp) and getscu against the node: what they get is
what the node holds, byte for byte, and a compressed instance reaches a peer that refuses
its transfer syntax decompressed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dicom_node.store.header import read_header
from dicom_node.synthetic import StudySpec, ct_series
from tests.conftest import dcmtk, require
from tests.qr.conftest import NODE_AE, StoreSCP


def _dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the File Meta Information (which each writer makes its own)."""
    data = path.read_bytes()
    meta_len = int.from_bytes(data[140:144], "little")
    return data[144 + meta_len :]


def _received(folder: Path) -> dict[str, Path]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in folder.iterdir() if p.is_file()}


def test_findscu_study_level(node, tmp_path):
    require("findscu")
    result = dcmtk(
        "findscu", "-S", "-X", "-od", str(tmp_path), "-aec", NODE_AE, "127.0.0.1", str(node.port),
        "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=doe*", "-k", "StudyDate=20240101-",
        "-k", "StudyInstanceUID", "-k", "ModalitiesInStudy", "-k", "NumberOfStudyRelatedInstances",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    responses = [dcmread(p) for p in sorted(tmp_path.glob("rsp*.dcm"))]
    by_uid = {ds.StudyInstanceUID: ds for ds in responses}
    cat = node.catalogue.studies
    assert set(by_uid) == {cat["s1"], cat["s2"]}
    assert int(by_uid[cat["s2"]].NumberOfStudyRelatedInstances) == 3
    assert list(by_uid[cat["s2"]].ModalitiesInStudy) == ["CT", "MR"]


def test_findscu_refusal_is_reported(node):
    require("findscu")
    result = dcmtk("findscu", "-S", "-v", "-aec", NODE_AE, "127.0.0.1", str(node.port), "-k", "QueryRetrieveLevel=WARD")
    assert "Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in result.stdout + result.stderr


def test_movescu_study_to_storescp(node, storescp):
    require("movescu")
    storescp.clear()
    study = node.catalogue.studies["s2"]
    result = dcmtk(
        "movescu", "-S", "-aec", NODE_AE, "-aem", storescp.ae_title, "127.0.0.1", str(node.port),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    new = _received(storescp.folder)
    assert set(new) == set(node.catalogue.instances["s2"])
    for uid, path in new.items():
        assert _dataset_bytes(path) == _dataset_bytes(node.catalogue.files[uid]), "sent as stored"


def test_movescu_patient_root_patient_level(node, storescp):
    require("movescu")
    storescp.clear()
    result = dcmtk(
        "movescu", "-P", "-aec", NODE_AE, "-aem", storescp.ae_title, "127.0.0.1", str(node.port),
        "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=PAT1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert set(_received(storescp.folder)) == set(node.catalogue.instances["s1"] + node.catalogue.instances["s2"])


def test_getscu_series(node, tmp_path):
    require("getscu")
    study, series = node.catalogue.studies["s2"], node.catalogue.series["s2"][0]
    result = dcmtk(
        "getscu", "-S", "-aec", NODE_AE, "-od", str(tmp_path), "127.0.0.1", str(node.port),
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = _received(tmp_path)
    assert len(got) == 2 and set(got) <= set(node.catalogue.instances["s2"])
    for uid, path in got.items():
        assert _dataset_bytes(path) == _dataset_bytes(node.catalogue.files[uid])


@pytest.fixture(scope="module")
def rle_study(node) -> str:
    """One RLE Lossless CT instance, stored compressed."""
    spec = StudySpec("PAT9", "RLE^TEST", study_date="20250505")
    [ds] = ct_series(spec, shape=(1, 16, 16), lesion_radius=None)
    ds.compress(RLELossless)
    path = node.server.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    node.server.index.add_instances([read_header(path)])
    return spec.study_uid


@pytest.fixture
def accept_all_scp(tmp_path: Path, node) -> Iterator[StoreSCP]:
    scp = StoreSCP(tmp_path / "all", "ALLSCP", "+xa")
    node.settings.destinations["all"] = scp.destination
    yield scp
    scp.stop()


def _move(node, study: str, destination: str) -> None:
    result = dcmtk(
        "movescu", "-S", "-aec", NODE_AE, "-aem", destination, "127.0.0.1", str(node.port),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_compressed_instance_sent_as_stored_when_accepted(node, rle_study, accept_all_scp):
    require("movescu")
    _move(node, rle_study, accept_all_scp.ae_title)
    [path] = accept_all_scp.files()
    assert dcmread(path).file_meta.TransferSyntaxUID == RLELossless


def test_compressed_instance_decompressed_for_a_peer_refusing_it(node, rle_study, storescp):
    require("movescu")
    storescp.clear()
    _move(node, rle_study, storescp.ae_title)  # storescp accepts uncompressed syntaxes only
    [path] = _received(storescp.folder).values()
    received = dcmread(path)
    assert received.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert received.pixel_array.shape == (16, 16)
