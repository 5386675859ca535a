"""Identifiers that do not fit the model, and unknown move destinations, get the PS3.4 failure
statuses with an Error Comment, and the node keeps answering."""

from __future__ import annotations

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.qr.conftest import associate


def _identifier(**keys: str) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _find_statuses(node, identifier: Dataset, model: str = StudyRootQueryRetrieveInformationModelFind) -> list[Dataset]:
    assoc = associate(node, model)
    try:
        return [status for status, _ in assoc.send_c_find(identifier, model)]
    finally:
        assoc.release()


@pytest.mark.parametrize(
    ("keys", "model", "status", "comment"),
    [
        ({"PatientName": "*"}, StudyRootQueryRetrieveInformationModelFind, 0xA900, "QueryRetrieveLevel missing"),
        ({"QueryRetrieveLevel": "FOO"}, StudyRootQueryRetrieveInformationModelFind, 0xA900, "invalid"),
        ({"QueryRetrieveLevel": "PATIENT"}, StudyRootQueryRetrieveInformationModelFind, 0xA900, "not in the study"),
        ({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ""}, PatientRootQueryRetrieveInformationModelFind, 0xA900, "PatientID"),
        ({"QueryRetrieveLevel": "SERIES", "Modality": "CT"}, StudyRootQueryRetrieveInformationModelFind, 0xA900, "StudyInstanceUID"),
        ({"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2*"}, StudyRootQueryRetrieveInformationModelFind, 0xA900, "StudyInstanceUID"),
        ({"QueryRetrieveLevel": "STUDY", "StudyDate": "2025-13-01"}, StudyRootQueryRetrieveInformationModelFind, 0xC000, "StudyDate"),
        ({"QueryRetrieveLevel": "STUDY", "StudyDate": "-"}, StudyRootQueryRetrieveInformationModelFind, 0xC000, "StudyDate"),
        ({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.*"}, StudyRootQueryRetrieveInformationModelFind, 0xC000, "wildcards"),
    ],
)  # fmt: skip
def test_bad_find_identifiers(node, keys, model, status, comment):
    [final] = _find_statuses(node, _identifier(**keys), model)
    assert final.Status == status
    assert comment in final.ErrorComment


def test_bad_integer_key(node):
    identifier = _identifier(QueryRetrieveLevel="SERIES", StudyInstanceUID=node.catalogue.studies["s1"])
    # SeriesNumber "abc": pydicom refuses to make such an IS, so the element goes in undecoded.
    identifier[0x00200011] = RawDataElement(Tag(0x00200011), "IS", 4, b"abc ", 0, True, True)
    [final] = _find_statuses(node, identifier)
    assert final.Status == 0xC000 and "SeriesNumber" in final.ErrorComment


def test_node_stays_up_after_refusals(node):
    _find_statuses(node, _identifier(QueryRetrieveLevel="NONSENSE"))
    assoc = associate(node, Verification, StudyRootQueryRetrieveInformationModelFind)
    try:
        assert assoc.send_c_echo().Status == 0x0000
        statuses = [s.Status for s, _ in assoc.send_c_find(_identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=""), StudyRootQueryRetrieveInformationModelFind)]
        assert statuses == [0xFF00] * 4 + [0x0000]
    finally:
        assoc.release()


def _move_final(node, identifier: Dataset, destination: str) -> Dataset:
    assoc = associate(node, StudyRootQueryRetrieveInformationModelMove)
    try:
        *_, (final, _) = assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove)
        return final
    finally:
        assoc.release()


def test_unknown_move_destination(node):
    study = node.catalogue.studies["s1"]
    final = _move_final(node, _identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID=study), "NOBODY")
    assert final.Status == 0xA801


def test_move_without_unique_key(node, storescp):
    final = _move_final(node, _identifier(QueryRetrieveLevel="STUDY", PatientName="DOE*"), storescp.ae_title)
    assert final.Status == 0xA900 and "StudyInstanceUID" in final.ErrorComment


def test_move_of_nothing_succeeds_with_no_suboperations(node, storescp):
    final = _move_final(node, _identifier(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2.3.4"), storescp.ae_title)
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 0


def test_get_with_bad_level(node):
    assoc = associate(node, StudyRootQueryRetrieveInformationModelGet)
    try:
        *_, (final, _) = assoc.send_c_get(_identifier(QueryRetrieveLevel="PATIENT", PatientID="PAT1"), StudyRootQueryRetrieveInformationModelGet)
    finally:
        assoc.release()
    assert final.Status == 0xA900 and "PATIENT" in final.ErrorComment


@pytest.mark.parametrize("level", ["WARD", "PATIENT"])  # no such level; not one of the Study Root model
def test_move_refused_before_any_suboperation_reports_none(node, storescp, level):
    identifier = _identifier(QueryRetrieveLevel=level, StudyInstanceUID=node.catalogue.studies["s1"], PatientID="PAT1")
    final = _move_final(node, identifier, storescp.ae_title)
    assert final.Status == 0xA900 and level in final.ErrorComment
    counts = [final.get(f"Number{kind}Suboperations", 0) for kind in ("OfCompleted", "OfFailed", "OfWarning", "OfRemaining")]
    assert counts == [0, 0, 0, 0], "no sub-operation was attempted"


def test_get_refused_before_any_suboperation_reports_none(node):
    assoc = associate(node, StudyRootQueryRetrieveInformationModelGet)
    try:
        *_, (final, _) = assoc.send_c_get(_identifier(QueryRetrieveLevel="WARD"), StudyRootQueryRetrieveInformationModelGet)
    finally:
        assoc.release()
    assert final.Status == 0xA900
    assert final.get("NumberOfFailedSuboperations", 0) == 0 and final.get("NumberOfCompletedSuboperations", 0) == 0
