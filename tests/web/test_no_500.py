"""Property tests: no request makes the web face answer 500 — every operation of its OpenAPI
schema with generated path, query and header values (schemathesis), and STOW-RS with
generated bodies (hypothesis). Bounded to a few seconds each."""

from __future__ import annotations

from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicom_node.config import Settings
from dicom_node.store.index import Index
from dicom_node.web.app import create_app
from tests.web.conftest import WebNode

# Every example is a real HTTP request to the node: few of them per operation.
BOUNDED = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


def _schema() -> schemathesis.BaseSchema:
    """The app's own OpenAPI schema; routes do not depend on settings, so a throwaway app
    over an in-memory index gives the running node's schema."""
    app = create_app(Settings(data_dir=Path("unused")), Index("sqlite://"))
    return schemathesis.openapi.from_dict(app.openapi())


schema = _schema()


@schema.parametrize()
@BOUNDED
def test_no_operation_answers_500(case: schemathesis.Case, web_node: WebNode) -> None:
    response = case.call(base_url=web_node.url, headers=web_node.auth("admin"), timeout=10)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"


parts = st.lists(st.one_of(st.binary(max_size=300), st.just(b"DICM"), st.just(b"\x00" * 128 + b"DICM\x02\x00")), max_size=3)
content_types = st.one_of(
    st.just('multipart/related; type="application/dicom"; boundary=xyz'),
    st.just("multipart/related; boundary=xyz"),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),  # what a header may hold
)


@BOUNDED
@given(parts=parts, content_type=content_types, closing=st.booleans(), junk=st.binary(max_size=40))
def test_stow_never_answers_500(web_node: WebNode, parts: list[bytes], content_type: str, closing: bool, junk: bytes) -> None:
    body = junk + b"".join(b"--xyz\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts)
    body += b"--xyz--\r\n" if closing else b""
    response = requests.post(
        f"{web_node.url}/dicom-web/studies", data=body, timeout=10,
        headers={**web_node.auth("operator"), "Content-Type": content_type},
    )  # fmt: skip
    assert response.status_code < 500, response.text[:300]


keys = st.sampled_from([
    "PatientName", "PatientID", "StudyDate", "StudyTime", "ModalitiesInStudy", "SeriesNumber", "InstanceNumber",
    "StudyInstanceUID", "SOPInstanceUID", "00100010", "Rows", "ReferencedSOPSequence", "limit", "offset", "includefield",
    "fuzzymatching", "nonsense",
])  # fmt: skip
values = st.one_of(st.text(max_size=20), st.sampled_from(["*", "-", "2024-", "DOE*", "1.2.3,1.2.4", "all", "-1", "99999999999"]))


@BOUNDED
@given(params=st.lists(st.tuples(keys, values), max_size=4), level=st.sampled_from(["studies", "series", "instances"]))
def test_qido_never_answers_500(web_node: WebNode, params: list[tuple[str, str]], level: str) -> None:
    response = requests.get(f"{web_node.url}/dicom-web/{level}", params=params, headers=web_node.auth(), timeout=10)
    assert response.status_code in (200, 400), response.text[:300]
