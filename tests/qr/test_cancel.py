"""C-CANCEL (PS3.7 9.3.2.3) stops a C-FIND, C-MOVE or C-GET in progress with status 0xFE00."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicom_node.config import DicomDestination
from dicom_node.store.header import InstanceRecord, read_header
from dicom_node.synthetic import StudySpec, ct_series
from tests.conftest import free_port
from tests.qr.conftest import NODE_AE, associate

MANY = 10_000


@pytest.fixture(scope="module")
def big_series(node) -> tuple[str, str]:
    """A series of MANY index rows (C-FIND reads only the index, so no files are needed)."""
    study, series = generate_uid(), generate_uid()
    records = [
        InstanceRecord(generate_uid(), CTImageStorage, study, series, "1.2.840.10008.1.2.1", path=f"/nonexistent/{i}",
                       patient_id="BIG", instance_number=i, modality="CT")
        for i in range(MANY)
    ]  # fmt: skip
    node.server.index.add_instances(records)
    return study, series


def _identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_cancel_find(node, big_series):
    study, series = big_series
    assoc = associate(node, StudyRootQueryRetrieveInformationModelFind)
    try:
        responses = assoc.send_c_find(
            _identifier("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=""),
            StudyRootQueryRetrieveInformationModelFind,
            msg_id=7,
        )
        statuses = [next(responses)[0].Status]
        assoc.send_c_cancel(7, query_model=StudyRootQueryRetrieveInformationModelFind)
        statuses += [status.Status for status, _ in responses]
    finally:
        assoc.release()
    assert statuses[-1] == 0xFE00
    assert len(statuses) < MANY, "the node stopped sending matches"


def test_cancel_get(node):
    """The requestor cancels while it handles the first C-STORE sub-operation."""
    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    stored: list[str] = []

    def on_store(event: evt.Event) -> int:
        stored.append(event.request.AffectedSOPInstanceUID)
        if len(stored) == 1:
            event.assoc.send_c_cancel(3, query_model=StudyRootQueryRetrieveInformationModelGet)
        return 0x0000

    assoc = ae.associate(
        "127.0.0.1", node.port, ae_title=NODE_AE, ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )  # fmt: skip
    assert assoc.is_established
    try:
        study = node.catalogue.studies["s1"]  # three CT instances
        *_, (final, identifier) = assoc.send_c_get(
            _identifier("STUDY", StudyInstanceUID=study), StudyRootQueryRetrieveInformationModelGet, msg_id=3
        )
    finally:
        assoc.release()
    assert final.Status == 0xFE00
    assert len(stored) == 1 and final.NumberOfCompletedSuboperations == 1
    assert final.NumberOfRemainingSuboperations == 2


@pytest.fixture
def cancelling_scp(node) -> Iterator[dict[str, object]]:
    """A storage SCP that cancels the C-MOVE (on the requestor's association) on the first
    instance it receives."""
    state: dict[str, object] = {"stored": 0}

    def on_store(event: evt.Event) -> int:
        state["stored"] = int(state["stored"]) + 1  # type: ignore[call-overload]
        if state["stored"] == 1:
            state["move_assoc"].send_c_cancel(5, query_model=StudyRootQueryRetrieveInformationModelMove)  # type: ignore[attr-defined]
        return 0x0000

    ae = AE(ae_title="CANCELSCP")
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    node.settings.destinations["cancelscp"] = DicomDestination(ae_title="CANCELSCP", host="127.0.0.1", port=port)
    yield state
    server.shutdown()


@pytest.fixture(scope="module")
def twenty(node) -> str:
    """A 20-image study: the C-CANCEL travels on another association than the C-STORE
    responses, so it may overtake one or two of them, not twenty."""
    spec = StudySpec("PATC", "CANCEL^MOVE")
    datasets = ct_series(spec, shape=(20, 16, 16), lesion_radius=None)
    records = []
    for ds in datasets:
        path = node.server.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        records.append(read_header(path))
    node.server.index.add_instances(records)
    return spec.study_uid


def test_cancel_move(node, cancelling_scp, twenty):
    assoc = associate(node, StudyRootQueryRetrieveInformationModelMove)
    cancelling_scp["move_assoc"] = assoc
    try:
        *_, (final, identifier) = assoc.send_c_move(
            _identifier("STUDY", StudyInstanceUID=twenty), "CANCELSCP", StudyRootQueryRetrieveInformationModelMove,
            msg_id=5,
        )  # fmt: skip
    finally:
        assoc.release()
    stored = int(cancelling_scp["stored"])  # type: ignore[call-overload]
    assert final.Status == 0xFE00
    assert stored < 20 and final.NumberOfCompletedSuboperations == stored
    assert final.NumberOfRemainingSuboperations == 20 - stored
