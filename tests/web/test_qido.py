"""QIDO-RS against a running node with dicomweb-client: the same matches as C-FIND over DIMSE
for the same keys, every search resource, paging and includefield."""

from __future__ import annotations

import logging

import pytest
import requests
from pydicom.dataset import Dataset

from dicom_node.config import DicomDestination
from dicom_node.qr.model import Level
from dicom_node.qr.scu import query
from dicom_node.web.dicomweb.qido import parse_search, search
from tests.qr.conftest import NODE_AE
from tests.web.conftest import WebNode


def c_find(web: WebNode, level: str, keys: dict[str, str]) -> set[str]:
    dest = DicomDestination(ae_title=NODE_AE, host="127.0.0.1", port=web.node.port)
    unique = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}[level]
    return {str(ds[unique].value) for ds in query(dest, level, {unique: "", **keys}, "study", calling_ae="PYSCU")}


def uids(results: list[dict], tag: str) -> set[str]:
    return {Dataset.from_json(r)[tag].value for r in results}


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"PatientName": "doe*"},
        {"PatientName": "DOE^JOHN"},
        {"PatientID": "PAT?"},
        {"StudyDate": "20250101-"},
        {"StudyDate": "-20241231"},
        {"StudyTime": "1200-2359"},
        {"AccessionNumber": "ACC_300"},
        {"ModalitiesInStudy": "MR"},
        {"StudyDescription": "XR CHEST [PA]"},
        {"PatientSex": "F", "StudyDate": "20250610"},
    ],
)
def test_study_search_matches_what_c_find_matches(web_node: WebNode, keys: dict[str, str]) -> None:
    found = uids(web_node.client().search_for_studies(search_filters=keys), "StudyInstanceUID")
    assert found == c_find(web_node, "STUDY", keys)


def test_series_and_instance_searches_match_c_find(web_node: WebNode) -> None:
    client = web_node.client()
    study = web_node.catalogue.studies["s2"]
    series = uids(client.search_for_series(study, search_filters={"Modality": "CT"}), "SeriesInstanceUID")
    assert series == c_find(web_node, "SERIES", {"StudyInstanceUID": study, "Modality": "CT"})
    assert len(series) == 1
    (one,) = series
    instances = uids(client.search_for_instances(study, one), "SOPInstanceUID")
    assert instances == c_find(web_node, "IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": one})


def test_flat_searches_span_every_study(web_node: WebNode) -> None:
    client = web_node.client()
    all_series = {uid for uids_ in web_node.catalogue.series.values() for uid in uids_}
    assert uids(client.search_for_series(), "SeriesInstanceUID") == all_series
    ct = uids(client.search_for_series(search_filters={"Modality": "CT"}), "SeriesInstanceUID")
    assert ct < all_series and ct
    all_instances = {uid for uids_ in web_node.catalogue.instances.values() for uid in uids_}
    assert uids(client.search_for_instances(), "SOPInstanceUID") == all_instances
    study = web_node.catalogue.studies["s2"]
    in_study = uids(client.search_for_instances(study), "SOPInstanceUID")
    assert in_study == set(web_node.catalogue.instances["s2"])


def test_results_carry_default_fields_and_retrieve_url(web_node: WebNode) -> None:
    (result,) = web_node.client().search_for_studies(search_filters={"AccessionNumber": "ACC100"})
    ds = Dataset.from_json(result)
    assert ds.PatientID == "PAT1" and ds.ModalitiesInStudy == "CT"
    assert ds.NumberOfStudyRelatedInstances == 3
    # dicomweb-client sends a Host header without the port, which the URL is built on
    assert ds.RetrieveURL.startswith("http://127.0.0.1")
    assert ds.RetrieveURL.endswith(f"/dicom-web/studies/{ds.StudyInstanceUID}")
    assert "QueryRetrieveLevel" not in ds
    (series,) = web_node.client().search_for_series(ds.StudyInstanceUID)
    assert Dataset.from_json(series).RetrieveURL.endswith(f"/series/{Dataset.from_json(series).SeriesInstanceUID}")


def test_includefield_all_returns_every_held_key(web_node: WebNode) -> None:
    plain = web_node.client().search_for_studies(search_filters={"AccessionNumber": "ACC100"})[0]
    everything = web_node.client().search_for_studies(search_filters={"AccessionNumber": "ACC100"}, get_remaining=True, fields=["all"])[0]
    assert "00081030" not in plain  # StudyDescription is not a default study field
    assert Dataset.from_json(everything).StudyDescription == "CT CHEST"
    named = web_node.client().search_for_studies(search_filters={"AccessionNumber": "ACC100"}, fields=["StudyDescription"])[0]
    assert Dataset.from_json(named).StudyDescription == "CT CHEST"


def test_limit_and_offset_page_through_the_matches(web_node: WebNode) -> None:
    client = web_node.client()
    everything = [Dataset.from_json(r).StudyInstanceUID for r in client.search_for_studies()]
    pages = [
        Dataset.from_json(r).StudyInstanceUID
        for offset in range(0, len(everything), 2)
        for r in client.search_for_studies(limit=2, offset=offset)
    ]
    assert pages == everything and len(everything) == 4


def test_no_match_is_200_with_an_empty_array(web_node: WebNode) -> None:
    response = requests.get(
        f"{web_node.url}/dicom-web/studies", params={"PatientID": "NOBODY"}, headers=web_node.auth(), timeout=10
    )
    assert response.status_code == 200 and response.json() == []
    assert web_node.client().search_for_studies(search_filters={"PatientID": "NOBODY"}) == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"NoSuchAttribute": "x"}, "names no DICOM attribute"),
        ({"StudyDate": "yesterday"}, "StudyDate"),
        ({"limit": "-1"}, "limit"),
        ({"offset": "many"}, "offset"),
        ({"StudyInstanceUID": "1.2.*"}, "wildcards"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
    ],
)
def test_a_query_that_cannot_be_understood_is_400(web_node: WebNode, params: dict[str, str], says: str) -> None:
    response = requests.get(f"{web_node.url}/dicom-web/studies", params=params, headers=web_node.auth(), timeout=10)
    assert response.status_code == 400
    assert says in response.json()["detail"]


def test_fuzzy_matching_asked_for_is_ignored_with_a_warning(web_node: WebNode) -> None:
    response = requests.get(
        f"{web_node.url}/dicom-web/studies", params={"PatientName": "DOE^JOHN", "fuzzymatching": "true"},
        headers=web_node.auth(), timeout=10,
    )  # fmt: skip
    assert response.status_code == 200 and len(response.json()) == 2
    assert "fuzzymatching" in response.headers["Warning"]


def test_a_search_that_only_accepts_xml_is_406(web_node: WebNode) -> None:
    headers = {**web_node.auth(), "Accept": "application/dicom+xml"}
    assert requests.get(f"{web_node.url}/dicom-web/studies", headers=headers, timeout=10).status_code == 406


def test_a_result_set_over_the_servers_cap_says_more_can_be_asked_for(web_node: WebNode) -> None:
    """PS3.18 8.3.4.4.3: a response cut by the server's maximum says so; one cut by the
    client's own limit, or one that holds every match, does not."""
    index, base = web_node.node.index, web_node.url
    capped = parse_search(Level.STUDY, {}, {}, relational=False, max_results=3)
    matches, more = search(index, capped, base)
    assert len(matches) == 3 and more
    everything = parse_search(Level.STUDY, {}, {}, relational=False, max_results=100)
    assert search(index, everything, base)[1] is False
    asked = parse_search(Level.STUDY, {"limit": ["2"]}, {}, relational=False, max_results=3)
    page, more = search(index, asked, base)
    assert len(page) == 2 and not more


def test_a_refused_query_value_is_not_logged(web_node: WebNode, caplog: pytest.LogCaptureFixture) -> None:
    """A value may be a patient's name or birth date: the 400 and its log line name the key only."""
    with caplog.at_level(logging.WARNING):  # (urllib3's debug lines are the client's, with the URL)
        response = requests.get(
            f"{web_node.url}/dicom-web/studies", params={"PatientBirthDate": "19600101x"}, headers=web_node.auth(), timeout=10
        )
    assert response.status_code == 400
    assert "PatientBirthDate" in caplog.text
    assert "19600101x" not in caplog.text and "19600101x" not in response.text
