"""C-FIND matching rules (PS3.4 C.2.2.2) against the node, one rule at a time, through the
node's own SCU so both ends are exercised; on SQLite and on PostgreSQL, whose SQL differs
(GLOB vs LIKE/ILIKE, group_concat vs string_agg)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dicom_node.config import DicomDestination
from dicom_node.qr.scu import query
from tests.qr.conftest import NODE_AE, Node, serving_node


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request, tmp_path_factory) -> Iterator[Node]:
    with serving_node(request, tmp_path_factory.mktemp("node")) as served:
        yield served


def find(node: Node, level: str, keys: dict[str, str], model: str = "study") -> list:
    dest = DicomDestination(ae_title=NODE_AE, host="127.0.0.1", port=node.port)
    return query(dest, level, keys, model, calling_ae="PYSCU")


def studies(node: Node, **keys: str) -> set[str]:
    """Names of the catalogue studies a study-level C-FIND with ``keys`` matches."""
    found = {str(ds.StudyInstanceUID) for ds in find(node, "STUDY", {"StudyInstanceUID": "", **keys})}
    names = {uid: name for name, uid in node.catalogue.studies.items()}
    assert found <= set(names), "only catalogue studies exist"
    return {names[uid] for uid in found}


def test_universal_matching_returns_everything(node):
    assert studies(node) == {"s1", "s2", "s3", "s4"}
    assert studies(node, PatientName="", AccessionNumber="*") == {"s1", "s2", "s3", "s4"}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"AccessionNumber": "ACC200"}, {"s2"}),
        ({"PatientID": "PAT2"}, {"s3"}),
        ({"StudyDescription": "ct chest"}, set()),  # text is case-sensitive
        ({"StudyDescription": "CT CHEST"}, {"s1"}),
        ({"PatientSex": "F"}, {"s3", "s4"}),
    ],
)
def test_single_value_matching(node, keys, expected):
    assert studies(node, **keys) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("doe^john", {"s1", "s2"}), ("DOE^JOHN", {"s1", "s2"}), ("smith^anna", {"s3"}), ("DOE", set())],
)
def test_person_names_match_case_insensitively(node, name, expected):
    assert studies(node, PatientName=name) == expected


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"PatientName": "doe*"}, {"s1", "s2", "s4"}),
        ({"PatientName": "DOE^J?HN"}, {"s1", "s2"}),
        ({"PatientName": "*anna"}, {"s3"}),
        ({"AccessionNumber": "ACC?00"}, {"s1", "s2", "s4"}),  # ? is one character
        ({"AccessionNumber": "ACC_*"}, {"s3"}),  # _ and % are literal, not SQL wildcards
        ({"AccessionNumber": "ACC%"}, set()),
        ({"StudyDescription": "*[PA]"}, {"s3"}),  # [ is literal, not a GLOB class
        ({"StudyDescription": "ct*"}, set()),  # wildcards on text stay case-sensitive
        ({"StudyDescription": "*CHEST*"}, {"s1", "s3"}),
    ],
)
def test_wildcard_matching(node, keys, expected):
    assert studies(node, **keys) == expected


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"StudyDate": "20250301"}, {"s2"}),
        ({"StudyDate": "20240101-20250301"}, {"s1", "s2"}),
        ({"StudyDate": "20250101-"}, {"s2", "s3"}),
        ({"StudyDate": "-20241231"}, {"s1"}),  # an empty date never matches a range
        ({"StudyDate": "2025.03.01"}, {"s2"}),  # ACR-NEMA style dates are tolerated
        ({"StudyTime": "1400-"}, {"s2", "s3"}),
        ({"StudyTime": "-1415"}, {"s1", "s2", "s4"}),  # 141500 is within "up to 14:15"
        ({"StudyTime": "0800-1200"}, {"s1", "s4"}),
        ({"StudyDate": "20250101-", "StudyTime": "-1500"}, {"s2"}),
        ({"PatientBirthDate": "-19700101"}, {"s1", "s2"}),
    ],
)
def test_range_matching(node, keys, expected):
    assert studies(node, **keys) == expected


def test_list_of_uid_matching(node):
    cat = node.catalogue.studies
    assert studies(node, StudyInstanceUID=f"{cat['s1']}\\{cat['s3']}") == {"s1", "s3"}
    assert studies(node, StudyInstanceUID=cat["s4"]) == {"s4"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("MR", {"s2"}), ("CT", {"s1", "s2", "s4"}), ("DX\\MR", {"s2", "s3"}), ("SEG", set())],
)
def test_modalities_in_study(node, value, expected):
    assert studies(node, ModalitiesInStudy=value) == expected


def test_study_level_return_keys_are_filled_and_computed(node):
    [s2] = find(
        node,
        "STUDY",
        {
            "StudyInstanceUID": node.catalogue.studies["s2"],
            "PatientName": "",
            "PatientID": "",
            "StudyDate": "",
            "StudyTime": "",
            "AccessionNumber": "",
            "StudyDescription": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedSeries": "",
            "NumberOfStudyRelatedInstances": "",
            "SeriesDescription": "",  # a series key at study level comes back empty
        },
    )
    assert str(s2.PatientName) == "DOE^JOHN" and s2.PatientID == "PAT1"
    assert (s2.StudyDate, s2.StudyTime, s2.AccessionNumber) == ("20250301", "141500", "ACC200")
    assert list(s2.ModalitiesInStudy) == ["CT", "MR"]
    assert (int(s2.NumberOfStudyRelatedSeries), int(s2.NumberOfStudyRelatedInstances)) == (2, 3)
    assert s2.SeriesDescription == ""
    assert s2.QueryRetrieveLevel == "STUDY" and s2.RetrieveAETitle == NODE_AE


def test_series_and_image_levels(node):
    s2 = node.catalogue.studies["s2"]
    series = find(
        node,
        "SERIES",
        {"StudyInstanceUID": s2, "SeriesInstanceUID": "", "Modality": "", "NumberOfSeriesRelatedInstances": ""},
    )
    by_modality = {ds.Modality: ds for ds in series}
    assert set(by_modality) == {"CT", "MR"}
    assert int(by_modality["MR"].NumberOfSeriesRelatedInstances) == 2
    assert all(ds.StudyInstanceUID == s2 for ds in series), "higher unique keys come back"
    mr = by_modality["MR"].SeriesInstanceUID
    [second] = find(node, "IMAGE", {"StudyInstanceUID": s2, "SeriesInstanceUID": mr, "InstanceNumber": "2", "SOPClassUID": ""})
    assert second.SOPInstanceUID in node.catalogue.instances["s2"]
    assert second.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert find(node, "SERIES", {"StudyInstanceUID": s2, "Modality": "mr"}) == []
    assert len(find(node, "SERIES", {"StudyInstanceUID": s2, "SeriesNumber": "1"})) == 1


def test_patient_root_model(node):
    patients = find(node, "PATIENT", {"PatientID": "", "PatientName": "DOE*", "NumberOfPatientRelatedStudies": "", "NumberOfPatientRelatedInstances": ""}, model="patient")
    counts = {ds.PatientID: (int(ds.NumberOfPatientRelatedStudies), int(ds.NumberOfPatientRelatedInstances)) for ds in patients}
    assert counts == {"PAT1": (2, 6), "PAT3": (1, 1)}
    found = find(node, "STUDY", {"PatientID": "PAT1", "StudyInstanceUID": "", "StudyDate": "20250101-"}, model="patient")
    assert [ds.StudyInstanceUID for ds in found] == [node.catalogue.studies["s2"]]
    assert found[0].PatientID == "PAT1"


def test_patient_study_only_model(node):
    found = find(node, "STUDY", {"PatientID": "PAT2", "StudyInstanceUID": ""}, model="patient_study_only")
    assert [ds.StudyInstanceUID for ds in found] == [node.catalogue.studies["s3"]]
