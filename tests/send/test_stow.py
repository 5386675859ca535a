"""Sending to a DICOMweb destination: STOW-RS into a real Orthanc with its DICOMweb plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node.config import load_settings
from dicom_node.errors import DestinationError
from dicom_node.send import send_files
from dicom_node.synthetic import ct_series, write_series
from tests.orthanc import DICOMWEB_PLUGIN, Orthanc


@pytest.fixture
def orthanc(tmp_path: Path):
    if not Path(DICOMWEB_PLUGIN).exists():
        pytest.fail("orthanc-dicomweb is not installed: run .ci/run")
    server = Orthanc(tmp_path / "orthanc", {}, dicomweb=True)
    yield server
    server.stop()


def test_stow_rs_delivers_every_instance(orthanc, tmp_path):
    files = write_series(ct_series(shape=(5, 16, 16), lesion_radius=None), tmp_path / "ct")
    settings = load_settings(data_dir=tmp_path / "node", destinations={"web": {"kind": "dicomweb", "url": orthanc.dicomweb_url}})
    report = send_files(settings, "web", files)
    assert report.ok and len(report.sent) == 5
    study_uid = str(dcmread(files[0]).StudyInstanceUID)
    assert orthanc.study_instances(study_uid) == 5


def test_unreachable_stow_server_is_a_transient_destination_error(tmp_path):
    files = write_series(ct_series(shape=(1, 16, 16), lesion_radius=None), tmp_path / "ct")
    settings = load_settings(data_dir=tmp_path / "node", destinations={"web": {"kind": "dicomweb", "url": "http://127.0.0.1:1/dicom-web"}})
    with pytest.raises(DestinationError, match="unreachable"):
        send_files(settings, "web", files)
