"""Per-peer permissions (issue 17 item 2): each operation × permitted/denied peer gets the right
DIMSE status and an audit record; refused associations and stores are audited too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from dicom_node.config import Settings, load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.store.index import Index
from dicom_node.synthetic import StudySpec, ct_series
from tests.conftest import FakePacs, dcmtk
from tests.tools import wait_for

FULL = ["store", "find", "move", "get", "echo"]


@pytest.fixture
def node(
    tmp_path: Path, fake_pacs: FakePacs
) -> Iterator[tuple[Settings, NodeServer, Path]]:
    audit_file = tmp_path / "audit.jsonl"
    settings = load_settings(
        data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0, ae_title="SECNODE",
        allowed_peers=[
            {"ae_title": "FULL", "permissions": FULL, "move_destinations": [fake_pacs.ae_title]},
            {"ae_title": "LIMITED"},  # defaults: store and echo only
            {"ae_title": "QUERYONLY", "permissions": ["find"]},
        ],
        destinations={"pacs": fake_pacs.destination(), "other": {"ae_title": "OTHER", "host": "127.0.0.1", "port": 9}},
        audit={"file": {"path": str(audit_file)}},
    )  # fmt: skip
    server = NodeServer(settings, qr=True)
    server.start()
    yield settings, server, audit_file
    server.stop()


def _assoc(
    server: NodeServer, calling: str, *contexts: str, get_storage: bool = False
) -> Any:
    ae = AE(ae_title=calling)
    for uid in contexts:
        ae.add_requested_context(uid)
    kwargs: dict[str, Any] = {}
    if get_storage:
        from pynetdicom import build_role

        ae.add_requested_context(CTImageStorage)
        kwargs["ext_neg"] = [build_role(CTImageStorage, scp_role=True)]
    assoc = ae.associate("127.0.0.1", server.port, ae_title="SECNODE", **kwargs)
    assert assoc.is_established, f"{calling} could not associate"
    return assoc


def _records(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text().splitlines()]
        if path.exists()
        else []
    )


def _study_query(study_uid: str = "") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def _last_status(responses: Any) -> Dataset:
    statuses = [status for status, _ in responses if status is not None]
    return statuses[-1]


def test_every_operation_for_a_permitted_and_a_denied_peer(
    node, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings, server, audit_file = node
    study = StudySpec(patient_id="PERM1")
    ct = ct_series(study, shape=(2, 16, 16), lesion_radius=None)

    # store: FULL and LIMITED may, QUERYONLY gets 0x0122
    assoc = _assoc(server, "LIMITED", CTImageStorage)
    assert [int(assoc.send_c_store(ds).Status) for ds in ct] == [0, 0]
    assoc.release()
    assoc = _assoc(server, "QUERYONLY", CTImageStorage)
    assert int(assoc.send_c_store(ct[0]).Status) == 0x0122
    assoc.release()
    index = Index(settings.database_url or "")
    wait_for(
        lambda: len(index.instance_paths(study.study_uid)) == 2, "the stored CT indexed"
    )
    index.close()

    # echo: FULL yes, QUERYONLY 0x0122
    assoc = _assoc(server, "FULL", Verification)
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()
    assoc = _assoc(server, "QUERYONLY", Verification)
    echo = assoc.send_c_echo()
    assert int(echo.Status) == 0x0122 and "add 'echo'" in echo.ErrorComment
    assoc.release()

    # find: QUERYONLY yes; LIMITED 0xC000 whose comment says what to add
    assoc = _assoc(server, "QUERYONLY", StudyRootQueryRetrieveInformationModelFind)
    found = list(
        assoc.send_c_find(_study_query(), StudyRootQueryRetrieveInformationModelFind)
    )
    assert int(_last_status(found).Status) == 0 and len(found) == 2
    assoc.release()
    assoc = _assoc(server, "LIMITED", StudyRootQueryRetrieveInformationModelFind)
    refused = _last_status(
        assoc.send_c_find(_study_query(), StudyRootQueryRetrieveInformationModelFind)
    )
    assert (
        int(refused.Status) == 0xC000
        and refused.ErrorComment
        == "find not permitted: add 'find' to LIMITED's permissions"
    )
    assoc.release()

    # move: FULL to its permitted destination yes, to another 0xA801; LIMITED 0xC000
    move_query = _study_query(study.study_uid)
    move_query.QueryRetrieveLevel = "STUDY"
    move_query.PatientID = "PERM1"
    assoc = _assoc(server, "FULL", PatientRootQueryRetrieveInformationModelMove)
    done = _last_status(
        assoc.send_c_move(
            move_query, "FAKE_PACS", PatientRootQueryRetrieveInformationModelMove
        )
    )
    assert int(done.Status) == 0 and int(done.NumberOfCompletedSuboperations) == 2
    other = _last_status(
        assoc.send_c_move(
            move_query, "OTHER", PatientRootQueryRetrieveInformationModelMove
        )
    )
    assert int(other.Status) == 0xA801
    assoc.release()
    assoc = _assoc(server, "LIMITED", PatientRootQueryRetrieveInformationModelMove)
    refused = _last_status(
        assoc.send_c_move(
            move_query, "FAKE_PACS", PatientRootQueryRetrieveInformationModelMove
        )
    )
    assert int(refused.Status) == 0xC000 and "add 'move'" in refused.ErrorComment
    assert int(refused.get("NumberOfFailedSuboperations", 0)) == 0
    assoc.release()

    # get: FULL yes, QUERYONLY 0xC000
    get_query = _study_query(study.study_uid)
    assoc = _assoc(
        server, "QUERYONLY", StudyRootQueryRetrieveInformationModelGet, get_storage=True
    )
    refused = _last_status(
        assoc.send_c_get(get_query, StudyRootQueryRetrieveInformationModelGet)
    )
    assert int(refused.Status) == 0xC000 and "add 'get'" in refused.ErrorComment
    assoc.release()

    # a calling AE not listed at all: A-ASSOCIATE-RJ
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(Verification)
    assert ae.associate("127.0.0.1", server.port, ae_title="SECNODE").is_rejected

    def audited() -> list[tuple[str, str, str]]:
        return [
            (r["event_id"], r["outcome"], r["participants"][0]["user_id"])
            for r in _records(audit_file)
        ]

    wait_for(
        lambda: ("110104", "4", "QUERYONLY") in audited(),
        "the refused store's association audited",
    )
    events = audited()
    expected = {
        ("110114", "0", "LIMITED"),  # accepted association
        ("110104", "0", "LIMITED"),  # its two instances, one message
        ("110113", "4", "QUERYONLY"),  # store/echo/get refused: Security Alert
        ("110112", "0", "QUERYONLY"),  # the query it may make
        ("110113", "4", "LIMITED"),  # find/move refused
        ("110104", "0", "SECNODE"),  # the C-MOVE: the node sends (source first)
        ("110114", "4", "STRANGER"),  # refused association
        ("110113", "4", "STRANGER"),
    }
    assert expected <= set(events), sorted(set(events))
    assert (
        sum(1 for e in events if e == ("110104", "0", "LIMITED")) == 1
    )  # one per transfer, not per instance
    store = next(
        r
        for r in _records(audit_file)
        if r["event_id"] == "110104" and r["participants"][0]["user_id"] == "LIMITED"
    )
    assert store["objects"][0] == {"id": study.study_uid, "id_type": "Study Instance UID", "name": None,
                                   "sop_classes": {CTImageStorage: 2}}  # fmt: skip


def test_dcmtk_findscu_of_a_store_only_peer_is_refused_with_the_upgrade_hint(
    node,
) -> None:  # type: ignore[no-untyped-def]
    _settings, server, _audit = node
    result = dcmtk("findscu", "-d", "-S", "-aet", "LIMITED", "-aec", "SECNODE", "-k", "QueryRetrieveLevel=STUDY",
                   "-k", "StudyInstanceUID", "127.0.0.1", str(server.port))  # fmt: skip
    output = result.stdout + result.stderr
    assert (
        "0xc000: Failed: Unable to process" in output
        and "add 'find' to LIMITED's permissions" in output
    )
