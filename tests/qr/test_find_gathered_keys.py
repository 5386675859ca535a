"""C-FIND keys with several values per match that the index answers from other rows: SOP
Classes in Study (the study's instances) and Other Patient IDs Sequence (what the patient's
instances gave), returned and matched, through a pynetdicom SCU against the node, on SQLite and
PostgreSQL. Both came back empty before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from tests.qr.conftest import Node, associate, serving_node


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request, tmp_path_factory) -> Iterator[Node]:
    with serving_node(request, tmp_path_factory.mktemp("node")) as served:
        yield served


def find(node: Node, identifier: Dataset, model: str = StudyRootQueryRetrieveInformationModelFind) -> list[Dataset]:
    assoc = associate(node, model)
    try:
        responses = list(assoc.send_c_find(identifier, model))
    finally:
        assoc.release()
    *pending, (final, _) = responses
    assert final.Status == 0x0000, f"0x{final.Status:04X} {final.get('ErrorComment', '')}"
    return [found for _, found in pending]


def study_query(**keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def names(node: Node, found: list[Dataset]) -> set[str]:
    by_uid = {uid: name for name, uid in node.catalogue.studies.items()}
    return {by_uid[str(ds.StudyInstanceUID)] for ds in found}


def other_ids(ds: Dataset) -> list[tuple[str, ...]]:
    return [tuple(str(item.get(k, "")) for k in ("PatientID", "IssuerOfPatientID", "TypeOfPatientID")) for item in ds.OtherPatientIDsSequence]


def test_sop_classes_in_study_are_the_studys_instances_classes(node):
    found = {str(ds.StudyInstanceUID): ds for ds in find(node, study_query(SOPClassesInStudy=""))}
    cat = node.catalogue.studies
    assert sorted(found[cat["s2"]].SOPClassesInStudy) == sorted([CTImageStorage, MRImageStorage])
    assert found[cat["s3"]].SOPClassesInStudy == DigitalXRayImageStorageForPresentation
    assert found[cat["s1"]].SOPClassesInStudy == CTImageStorage


@pytest.mark.parametrize(
    ("value", "expected"),
    [(MRImageStorage, {"s2"}), (CTImageStorage, {"s1", "s2", "s4"}), ([MRImageStorage, DigitalXRayImageStorageForPresentation], {"s2", "s3"}), ("1.2.3.4", set())],
)  # fmt: skip
def test_sop_classes_in_study_match_a_list_of_uids(node, value, expected):
    assert names(node, find(node, study_query(SOPClassesInStudy=value))) == expected


def test_other_patient_ids_come_back_at_study_and_patient_level(node):
    found = {str(ds.StudyInstanceUID): ds for ds in find(node, study_query(PatientID="", OtherPatientIDsSequence=[]))}
    cat = node.catalogue.studies
    assert other_ids(found[cat["s3"]]) == [("MRN-77", "OTHER_HOSP", "TEXT"), ("NHS-123", "NHS", "")]
    assert other_ids(found[cat["s1"]]) == [], "a patient without other IDs: an empty sequence"

    asked = Dataset()
    asked.PatientID = ""  # only this key of each item is asked for
    patient = Dataset()
    patient.QueryRetrieveLevel, patient.PatientID, patient.OtherPatientIDsSequence = "PATIENT", "PAT2", [asked]
    [pat2] = find(node, patient, PatientRootQueryRetrieveInformationModelFind)
    assert [list(item.keys()) for item in pat2.OtherPatientIDsSequence] == [[0x00100020], [0x00100020]]
    assert [item.PatientID for item in pat2.OtherPatientIDsSequence] == ["MRN-77", "NHS-123"]


@pytest.mark.parametrize(
    ("patient_id", "issuer", "expected", "items"),
    [("MRN-77", None, {"s3"}, ["MRN-77"]), ("NHS-*", None, {"s3"}, ["NHS-123"]), ("MRN-77", "NHS", set(), []),
     (None, "OTHER_HOSP", {"s3"}, ["MRN-77"]), ("PAT1", None, set(), [])],
)  # fmt: skip
def test_other_patient_ids_match_on_the_items_keys(node, patient_id, issuer, expected, items):
    asked = Dataset()
    asked.PatientID = patient_id or ""
    asked.IssuerOfPatientID = issuer or ""
    found = find(node, study_query(OtherPatientIDsSequence=[asked]))
    assert names(node, found) == expected
    assert [item.PatientID for ds in found for item in ds.OtherPatientIDsSequence] == items, "the matching items only"
