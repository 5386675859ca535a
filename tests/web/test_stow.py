"""STOW-RS against a running node: stored exactly as a C-STORE (same refusals, indexed at
once, retrievable), the PS3.18 10.5.3 response and its statuses, and malformed bodies."""

from __future__ import annotations

import io
import logging

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.synthetic import StudySpec, ct_series
from tests.web.conftest import WebNode

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def body(parts: list[bytes], mark: str = "b0undary", closing: bool = True) -> bytes:
    out = b"".join(b"--" + mark.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts)
    return out + (b"--" + mark.encode() + b"--\r\n" if closing else b"")


def post(web: WebNode, data: bytes, role: str = "operator", path: str = "/studies", **headers: str) -> requests.Response:
    ctype = headers.pop("content_type", 'multipart/related; type="application/dicom"; boundary=b0undary')
    return requests.post(
        f"{web.url}/dicom-web{path}", data=data, headers={**web.auth(role), "Content-Type": ctype, **headers}, timeout=30
    )


def new_series(n: int = 2) -> list[Dataset]:
    """A new synthetic CT series, as Part 10 files read back (with their file meta)."""
    datasets = ct_series(StudySpec("STOW1", "STOW^TEST"), shape=(n, 16, 16), lesion_radius=None)
    return [dcmread(io.BytesIO(part10(ds))) for ds in datasets]


def test_stored_instances_are_indexed_and_retrievable_at_once(web_node: WebNode) -> None:
    series = new_series()
    result = web_node.client("operator").store_instances(series)
    refs = result.ReferencedSOPSequence
    assert {r.ReferencedSOPInstanceUID for r in refs} == {ds.SOPInstanceUID for ds in series}
    assert all(r.ReferencedSOPClassUID == CT_STORAGE for r in refs)
    assert "FailedSOPSequence" not in result
    study = series[0].StudyInstanceUID
    back = web_node.client().retrieve_study(study)
    assert {ds.SOPInstanceUID for ds in back} == {ds.SOPInstanceUID for ds in series}
    assert refs[0].RetrieveURL.endswith(f"/studies/{study}/series/{series[0].SeriesInstanceUID}/instances/{refs[0].ReferencedSOPInstanceUID}")
    # Through the C-STORE path: stored where the SCP stores, counted as from the calling AE STOW-RS.
    path = web_node.node.server.store.path_for(study, series[0].SeriesInstanceUID, series[0].SOPInstanceUID)
    assert dcmread(path).SOPInstanceUID == series[0].SOPInstanceUID


def test_some_failed_is_202_with_the_failure_reason(web_node: WebNode) -> None:
    good = new_series(1)[0]
    bad = new_series(1)[0]
    bad.SOPInstanceUID = "1.2.3.not-a-uid"  # the C-STORE validation refuses it (0xA900)
    bad.file_meta.MediaStorageSOPInstanceUID = "1.2.3.not-a-uid"
    response = post(web_node, body([part10(good), part10(bad)]))
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/dicom+json"
    result = Dataset.from_json(response.json())
    assert [r.ReferencedSOPInstanceUID for r in result.ReferencedSOPSequence] == [good.SOPInstanceUID]
    (failed,) = result.FailedSOPSequence
    assert failed.FailureReason == 0xA900


def test_all_failed_is_409(web_node: WebNode, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        response = post(web_node, body([b"this is not DICOM at all", b"\x00" * 200]))
    assert response.status_code == 409
    result = Dataset.from_json(response.json())
    assert [f.FailureReason for f in result.FailedSOPSequence] == [0xC000, 0xC000]
    assert "STOW-RS part 1 refused (0xC000)" in caplog.text


def test_an_instance_of_another_study_is_refused_under_studies_uid(web_node: WebNode) -> None:
    ds = new_series(1)[0]
    response = post(web_node, body([part10(ds)]), path="/studies/1.2.826.0.1.3680043.8.498.1")
    assert response.status_code == 409
    assert Dataset.from_json(response.json()).FailedSOPSequence[0].FailureReason == 0xA900
    same = post(web_node, body([part10(ds)]), path=f"/studies/{ds.StudyInstanceUID}")
    assert same.status_code == 200
    assert Dataset.from_json(same.json()).RetrieveURL.endswith(f"/studies/{ds.StudyInstanceUID}")


def test_a_malformed_body_is_400_naming_the_part(web_node: WebNode, caplog: pytest.LogCaptureFixture) -> None:
    ds = new_series(1)[0]
    with caplog.at_level(logging.WARNING):
        unterminated = post(web_node, body([part10(ds), part10(ds)], closing=False)[:-30])
    assert unterminated.status_code == 400
    assert "part 2" in unterminated.json()["detail"]
    assert "400 POST /dicom-web/studies" in caplog.text
    no_parts = post(web_node, b"just a preamble, no boundary at all")
    assert no_parts.status_code == 400
    no_boundary = post(web_node, body([part10(ds)]), content_type='multipart/related; type="application/dicom"')
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["detail"]


def test_a_body_that_is_not_multipart_related_dicom_is_415(web_node: WebNode) -> None:
    ds = new_series(1)[0]
    assert post(web_node, part10(ds), content_type="application/dicom").status_code == 415
    json_parts = 'multipart/related; type="application/dicom+json"; boundary=b0undary'
    assert post(web_node, body([b"{}"]), content_type=json_parts).status_code == 415


def test_an_upload_over_the_limit_is_413(web_node: WebNode) -> None:
    big = b"\x00" * (3 << 20)  # the fixture's node takes 2 MB
    assert post(web_node, body([big])).status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming
        yield body([b""], closing=False)
        for _ in range(3):
            yield b"\x00" * (1 << 20)

    response = requests.post(
        f"{web_node.url}/dicom-web/studies", data=chunks(),
        headers={**web_node.auth("operator"), "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0undary'},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 413
    assert not list(web_node.node.server.store.incoming.glob("stow-*")), "nothing left behind"


def test_stow_needs_an_operator(web_node: WebNode) -> None:
    ds = new_series(1)[0]
    assert post(web_node, body([part10(ds)]), role="viewer").status_code == 403
    assert post(web_node, body([part10(ds)]), role="admin").status_code == 200


def test_nothing_is_left_in_incoming(web_node: WebNode) -> None:
    post(web_node, body([part10(new_series(1)[0]), b"junk"]))
    assert not list(web_node.node.server.store.incoming.glob("stow-*"))


def test_a_resent_instance_replaces_the_stored_one(web_node: WebNode) -> None:
    """A re-sent instance replaces the stored one (duplicate_policy replace), as over C-STORE."""
    ds = new_series(1)[0]
    assert post(web_node, body([part10(ds)])).status_code == 200
    ds.SeriesDescription = "changed"
    assert post(web_node, body([part10(ds)])).status_code == 200
    back = web_node.client().retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert back.SeriesDescription == "changed"
