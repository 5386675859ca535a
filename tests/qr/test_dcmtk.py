"""DCMTK findscu, movescu (to a DCMTK storescp) and getscu against the node, on SQLite and on
PostgreSQL: what they get is what the node holds, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pydicom import dcmread

from tests.conftest import dcmtk, require
from tests.qr.conftest import NODE_AE, Node, StoreSCP, serving_node


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request, tmp_path_factory, storescp: StoreSCP) -> Iterator[Node]:
    with serving_node(request, tmp_path_factory.mktemp("node"), storescp=storescp.destination) as served:
        yield served


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
