"""De-identified forward to a real Orthanc as the "cloud", and a SEG made there coming back
re-identified under the original study (issue 17 item 4)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes

from dicom_node.config import Settings, load_settings
from dicom_node.deid.profile import is_registered_uid
from dicom_node.receive.scp import NodeServer
from dicom_node.send import send_files
from dicom_node.store.index import Index
from dicom_node.synthetic import StudySpec, ct_series
from tests.orthanc import Orthanc
from tests.security.test_deidentify import identifying_leftovers
from tests.tools import free_port, wait_for


@pytest.fixture
def cloud_and_node(tmp_path: Path) -> Iterator[tuple[Orthanc, Settings, NodeServer]]:
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", {"NODE": ("DICOM_NODE", node_port)})
    settings = load_settings(
        data_dir=tmp_path / "node", port=node_port, host="127.0.0.1", min_free_disk_mb=0,
        destinations={"cloud": {"ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port,
                                "deidentify": "basic"}},
    )  # fmt: skip
    server = NodeServer(settings, qr=False)
    server.start()
    yield orthanc, settings, server
    server.stop()
    orthanc.stop()


def test_cloud_holds_no_identity_and_its_seg_comes_back_under_the_original_study(
    tmp_path: Path, cloud_and_node
) -> None:  # type: ignore[no-untyped-def]
    orthanc, settings, _server = cloud_and_node  # the node receives the SEG
    study = StudySpec(
        patient_id="MRN-31337",
        patient_name="DOE^JOHN",
        birth_date="19500505",
        accession="ACC-1",
    )
    originals = ct_series(study, shape=(3, 32, 32), lesion_radius=None)
    folder = tmp_path / "originals"
    folder.mkdir()
    paths = []
    for n, ds in enumerate(originals):
        ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
        paths.append(folder / f"{n}.dcm")

    report = send_files(settings, "cloud", paths)
    assert report.ok and sorted(report.sent) == sorted(paths)

    held = [
        dcmread(io.BytesIO(orthanc.http.get(f"/instances/{i}/file").content))
        for i in orthanc.http.get("/instances").json()
    ]
    assert len(held) == 3
    original_uids = {
        str(e.value)
        for ds in originals
        for e in ds.iterall()
        if e.VR == "UI" and not is_registered_uid(str(e.value))
    }
    by_number = {int(ds.InstanceNumber): ds for ds in originals}
    for ds in held:
        assert identifying_leftovers(by_number[int(ds.InstanceNumber)], ds) == []
        assert not {str(e.value) for e in ds.iterall() if e.VR == "UI"} & original_uids
        assert "DOE" not in str(ds.PatientName) and ds.PatientID != "MRN-31337"
        assert ds.PatientIdentityRemoved == "YES"
    assert (
        len({ds.PatientID for ds in held}) == 1
        and len({ds.StudyInstanceUID for ds in held}) == 1
    )

    held.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    mask = np.zeros((len(held), 32, 32), dtype=bool)
    mask[1, 10:20, 10:20] = True
    seg = hd.seg.Segmentation(
        source_images=held, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[hd.seg.SegmentDescription(
            segment_number=1, segment_label="lesion", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)],
        series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="cloud", manufacturer_model_name="cloud-ai", software_versions="1", device_serial_number="1",
    )  # fmt: skip
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    seg_id = orthanc.http.post("/instances", content=buffer.getvalue()).json()["ID"]
    orthanc.post("/modalities/NODE/store", {"Resources": [seg_id], "Synchronous": True})

    index = Index(settings.database_url or "")
    found = wait_for(
        lambda: index.instance_paths(study.study_uid),
        "the SEG indexed under the original study",
    )
    stored = dcmread(found[0])
    assert stored.SOPInstanceUID == seg.SOPInstanceUID  # the cloud's own object
    assert stored.StudyInstanceUID == study.study_uid
    assert (
        stored.PatientID == "MRN-31337"
        and str(stored.PatientName) == "DOE^JOHN"
        and stored.AccessionNumber == "ACC-1"
    )
    assert "PatientIdentityRemoved" not in stored
    referenced = {
        str(i.ReferencedSOPInstanceUID)
        for s in stored.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    }
    assert referenced == {str(ds.SOPInstanceUID) for ds in originals}
    assert (
        stored.ReferencedSeriesSequence[0].SeriesInstanceUID
        == originals[0].SeriesInstanceUID
    )
    assert stored.FrameOfReferenceUID == originals[0].FrameOfReferenceUID
    index.close()
