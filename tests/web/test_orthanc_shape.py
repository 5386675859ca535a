"""Our DICOMweb answers beside Orthanc's DICOMweb plug-in for the same instances: a QIDO-RS
study search and a WADO-RS series metadata call give the same attributes with the same VRs
and values, apart from the differences named here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.orthanc import Orthanc
from tests.web.conftest import WebNode

pytestmark = pytest.mark.slow

RETRIEVE_URL = "00081190"  # the same path on another host and port
# Orthanc always names the character set; we do only when a value is not ASCII, as our C-FIND does.
SPECIFIC_CHARACTER_SET = "00080005"
PIXEL_DATA = "7FE00010"  # both give a BulkDataURI: the same path on another host and port


@pytest.fixture(scope="module")
def orthanc(web_node: WebNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path_factory.mktemp("orthanc"), {}, dicomweb=True)
    try:
        server.upload(web_node.catalogue.files[uid] for uid in web_node.catalogue.instances["s2"])
        yield server
    finally:
        server.stop()


def differences(ours: dict, theirs: dict) -> set[str]:
    return {tag for tag in set(ours) | set(theirs) if ours.get(tag) != theirs.get(tag)}


def test_a_study_search_answers_as_orthanc_does(web_node: WebNode, orthanc: Orthanc) -> None:
    study = web_node.catalogue.studies["s2"]
    ours = requests.get(
        f"{web_node.url}/dicom-web/studies", params={"StudyInstanceUID": study}, headers=web_node.auth(), timeout=10
    ).json()
    theirs = requests.get(f"{orthanc.dicomweb_url}/studies", params={"StudyInstanceUID": study}, timeout=10).json()
    assert len(ours) == len(theirs) == 1
    assert differences(ours[0], theirs[0]) == {RETRIEVE_URL, SPECIFIC_CHARACTER_SET}
    path = f"/studies/{study}"
    assert ours[0][RETRIEVE_URL]["Value"][0].endswith(path) and theirs[0][RETRIEVE_URL]["Value"][0].endswith(path)


def test_series_metadata_answers_as_orthanc_does(web_node: WebNode, orthanc: Orthanc) -> None:
    study, series = web_node.catalogue.studies["s2"], web_node.catalogue.series["s2"][0]
    path = f"/studies/{study}/series/{series}/metadata"
    ours = requests.get(f"{web_node.url}/dicom-web{path}", headers=web_node.auth(), timeout=10).json()
    theirs = requests.get(f"{orthanc.dicomweb_url}{path}", timeout=10).json()
    by_uid = {item["00080018"]["Value"][0]: item for item in theirs}
    assert len(ours) == len(theirs) == 2
    for item in ours:
        their_item = by_uid[item["00080018"]["Value"][0]]
        assert differences(item, their_item) == {PIXEL_DATA}
        assert item[PIXEL_DATA]["vr"] == their_item[PIXEL_DATA]["vr"]
        path = item[PIXEL_DATA]["BulkDataURI"].partition("/dicom-web")[2]
        assert their_item[PIXEL_DATA]["BulkDataURI"].lower().endswith(path.lower())
