"""C-MOVE and C-GET final statuses when sub-operations fail (PS3.4 C.4.2.1.5, C.4.3.1.4):
Warning 0xB000 with the failed count and the Failed SOP Instance UID List, Failure 0xA702
when every sub-operation failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicom_node.config import DicomDestination
from dicom_node.store.header import read_header
from dicom_node.synthetic import StudySpec, ct_series
from tests.conftest import free_port
from tests.qr.conftest import NODE_AE, associate


@pytest.fixture
def refusing_scp(node) -> Iterator[set[str]]:
    """A storage SCP answering 0xA700 (out of resources) for the SOP Instance UIDs in the
    returned set and Success for the rest."""
    refuse: set[str] = set()

    def on_store(event: evt.Event) -> int:
        return 0xA700 if event.request.AffectedSOPInstanceUID in refuse else 0x0000

    ae = AE(ae_title="REFUSER")
    for uid in (CTImageStorage, MRImageStorage):
        ae.add_supported_context(uid, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    node.settings.destinations["refuser"] = DicomDestination(ae_title="REFUSER", host="127.0.0.1", port=port)
    yield refuse
    server.shutdown()


def _move(node, study: str) -> tuple[Dataset, Dataset | None]:
    assoc = associate(node, StudyRootQueryRetrieveInformationModelMove)
    identifier = Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", study
    try:
        *_, (final, failed) = assoc.send_c_move(identifier, "REFUSER", StudyRootQueryRetrieveInformationModelMove)
    finally:
        assoc.release()
    return final, failed


def test_one_refused_instance_is_a_warning_with_its_uid(node, refusing_scp):
    uids = node.catalogue.instances["s1"]
    refusing_scp.add(uids[1])
    final, identifier = _move(node, node.catalogue.studies["s1"])
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 1)
    assert identifier is not None and identifier.FailedSOPInstanceUIDList == uids[1]


def test_all_refused_is_a_failure(node, refusing_scp):
    refusing_scp.update(node.catalogue.instances["s1"])
    final, identifier = _move(node, node.catalogue.studies["s1"])
    assert final.Status == 0xA702 and final.NumberOfFailedSuboperations == 3
    assert identifier is not None and set(identifier.FailedSOPInstanceUIDList) == set(node.catalogue.instances["s1"])


@pytest.fixture(scope="module")
def lost_file(node) -> tuple[str, str]:
    """A two-image study whose second file has gone from the store behind the index's back."""
    spec = StudySpec("PATL", "LOST^FILE")
    records = []
    for ds in ct_series(spec, shape=(2, 16, 16), lesion_radius=None):
        path = node.server.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        records.append(read_header(path))
    node.server.index.add_instances(records)
    Path(records[1].path).unlink()
    return spec.study_uid, records[1].sop_instance_uid


def test_move_of_a_missing_file_fails_that_instance(node, refusing_scp, lost_file):
    study, lost = lost_file
    final, identifier = _move(node, study)
    assert final.Status == 0xB000 and final.NumberOfCompletedSuboperations == 1
    assert identifier is not None and identifier.FailedSOPInstanceUIDList == lost


def test_get_of_a_missing_file_fails_that_instance(node, lost_file):
    study, lost = lost_file
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1", node.port, ae_title=NODE_AE, ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)],
    )  # fmt: skip
    identifier = Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", study
    try:
        *_, (final, failed) = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
    finally:
        assoc.release()
    assert final.Status == 0xB000 and final.NumberOfCompletedSuboperations == 1
    assert failed is not None and failed.FailedSOPInstanceUIDList == lost
