"""A result reaches a FHIR server as a transaction Bundle (validated here with fhir.resources,
references and identifiers checked; a re-send is a conditional create that duplicates nothing)
and a webhook as a rendered POST that names the patient only with ``phi: true``. The peers are
local HTTP servers the tests start."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydicom import dcmread
from sqlalchemy import select

from dicom_node.queue import outbox
from dicom_node.queue.tasks import execute_job
from dicom_node.store.index import Index
from dicom_node.store.models import Job, JobEvent

from .helpers import STUDY, HttpPeer, index_of, make_settings, store_result


class FhirServer:
    """Conditional create as a FHIR server does it: an entry whose ifNoneExist matches a stored
    resource is answered 200 with that resource, otherwise it is created (201)."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}  # "Type?identifier=…" → "Type/id"
        self.fail_with: tuple[int, dict[str, Any]] | None = None

    def __call__(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with
        bundle = json.loads(request["body"])
        entries = []
        for entry in bundle["entry"]:
            key = f"{entry['request']['url']}?{entry['request']['ifNoneExist']}"
            if key in self.stored:
                entries.append({"response": {"status": "200 OK", "location": self.stored[key]}})
            else:
                self.stored[key] = f"{entry['request']['url']}/{len(self.stored) + 1}"
                entries.append({"response": {"status": "201 Created", "location": self.stored[key]}})
        return 200, {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


@pytest.fixture
def fhir_server():
    server = FhirServer()
    peer = HttpPeer(server)
    peer.start()
    yield server, peer
    peer.stop()


def job_row(index: Index, job_id: int) -> Job:
    with index.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def sr_numbers(path: str) -> list[tuple[str, float, str]]:
    """Every measured NUM of the SR's measurement groups: (code, value, UCUM unit), via pydicom."""
    found, stack = [], list(dcmread(path).ContentSequence)
    while stack:
        item = stack.pop(0)
        name = item.get("ConceptNameCodeSequence")
        if name and name[0].CodeValue == "125007":
            for child in item.ContentSequence:
                if child.ValueType == "NUM" and child.MeasuredValueSequence:
                    value = child.MeasuredValueSequence[0]
                    found.append((child.ConceptNameCodeSequence[0].CodeValue, float(value.NumericValue),
                                  value.MeasurementUnitsCodeSequence[0].CodeValue))  # fmt: skip
        else:
            stack.extend(item.get("ContentSequence", []))
    return found


def test_a_result_reaches_fhir_as_a_valid_transaction_and_a_resend_duplicates_nothing(tmp_path, result_objects, fhir_server):
    server, peer = fhir_server
    settings = make_settings(tmp_path, {"ehr": {"kind": "fhir", "base_url": peer.url + "/fhir", "auth_token": "s3cret"}})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["ehr"])
    assert execute_job(settings, index, job_id) == "succeeded"

    [request] = peer.requests
    assert request["path"] == "/fhir/" and request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Content-Type"] == "application/fhir+json"
    bundle = json.loads(request["body"])
    Bundle.model_validate(bundle)  # raises if it is not a valid R4(B) Bundle
    assert bundle["type"] == "transaction"
    by_url = {e["fullUrl"]: e for e in bundle["entry"]}
    assert all(e["request"]["method"] == "POST" and e["request"]["ifNoneExist"].startswith("identifier=") for e in bundle["entry"])

    [report] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    sr = next(ds for ds in result_objects if ds.SOPClassUID.startswith("1.2.840.10008.5.1.4.1.1.88."))
    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    assert report["code"]["coding"][0] == {"system": "http://loinc.org", "code": "25045-6", "display": "CT unspecified body region"}
    assert report["identifier"] == [{"system": "urn:dicom:uid", "value": f"urn:oid:{sr.SOPInstanceUID}"}]
    assert report["subject"]["identifier"]["value"] == STUDY.patient_id
    [study_ref] = report["imagingStudy"]
    imaging = by_url[study_ref["reference"]]["resource"]
    assert imaging["resourceType"] == "ImagingStudy"
    assert imaging["identifier"] == [{"system": "urn:dicom:uid", "value": f"urn:oid:{STUDY.study_uid}"}]

    observations = [by_url[r["reference"]]["resource"] for r in report["result"]]
    assert {o["resourceType"] for o in observations} == {"Observation"}
    quantities = sorted((o["code"]["coding"][0]["code"], o["valueQuantity"]["value"], o["valueQuantity"]["code"])
                        for o in observations if "valueQuantity" in o)  # fmt: skip
    sr_path = next(r["path"] for r in job_row(index, job_id).params["results"] if r["sop_class_uid"] == sr.SOPClassUID)
    expected = sorted(sr_numbers(sr_path))
    assert [(c, u) for c, _, u in quantities] == [(c, u) for c, _, u in expected], "one Observation per measurement"
    assert [v for _, v, _ in quantities] == pytest.approx([v for _, v, _ in expected], rel=1e-5)
    assert all(o["valueQuantity"]["system"] == "http://unitsofmeasure.org" for o in observations if "valueQuantity" in o)
    findings = [o for o in observations if o.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code") == "52101004"]
    assert len(findings) == 2, "each lesion's finding is an Observation: Lesion → Present"
    assert all(o["status"] == "preliminary" and o["subject"]["identifier"]["value"] == STUDY.patient_id for o in observations)
    devices = {o["device"]["reference"] for o in observations}
    [device] = [by_url[d]["resource"] for d in devices]
    assert device["resourceType"] == "Device" and device["deviceName"][0]["name"] == "ct-lesion"
    assert device["version"][0]["value"] == "1.2.0"
    assert device["property"][0]["valueCode"][0]["text"] == "sha256:0123abcd"
    assert device["identifier"][0]["value"] == f"urn:oid:{sr.ContributingEquipmentSequence[-1].DeviceUID}"
    assert {r["reference"] for o in observations for r in o["derivedFrom"]} == {study_ref["reference"]}

    created = dict(server.stored)
    assert outbox.retry_by_hand(index, job_id)
    assert execute_job(settings, index, job_id) == "succeeded"
    assert json.loads(peer.requests[1]["body"]) == bundle, "a re-send is the same transaction"
    assert server.stored == created, "conditional create: nothing new on the server"
    assert set(job_row(index, job_id).result["statuses"]) == {"200 OK"}


def test_fhir_server_errors_are_retried_or_dead_lettered_with_its_reason(tmp_path, result_objects, fhir_server):
    server, peer = fhir_server
    settings = make_settings(tmp_path, {"ehr": {"kind": "fhir", "base_url": peer.url}})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["ehr"])
    server.fail_with = (503, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient", "diagnostics": "database busy"}]})
    assert execute_job(settings, index, job_id) == "retry"
    assert "503" in (job_row(index, job_id).error or "") and "database busy" in (job_row(index, job_id).error or "")
    server.fail_with = (422, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "unknown subject"}]})
    assert execute_job(settings, index, job_id) == "dead", "a refused resource does not pass by retrying"
    with index.sessions() as session:
        last = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id.desc())).first()
    assert last.event == "dead" and "unknown subject" in last.detail


@pytest.fixture
def hook():
    peer = HttpPeer(lambda request: (200, "ok"))
    peer.start()
    yield peer
    peer.stop()


def test_a_webhook_carries_no_patient_identity_without_phi(tmp_path, result_objects, hook):
    settings = make_settings(tmp_path, {"teams": {"kind": "webhook", "url": hook.url + "/hook", "headers": {"X-Channel": "rad"}}})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["teams"])
    assert execute_job(settings, index, job_id) == "succeeded"
    [request] = hook.requests
    assert request["headers"]["X-Channel"] == "rad"
    body = json.loads(request["body"])
    assert body["urgent"] is True and body["study_uid"] == STUDY.study_uid
    assert [f["tracking_id"] for f in body["findings"]] == ["Lesion 1", "Lesion 2"]
    assert all(f["measurements"] for f in body["findings"])
    raw = request["body"].decode()
    for identity in ("SYNTHETIC", "PAT", STUDY.patient_id, STUDY.accession, STUDY.birth_date):
        assert identity not in raw, f"{identity!r} must not reach a webhook without phi: true"


def test_a_webhook_with_phi_renders_its_template_with_the_patient(tmp_path, result_objects, hook):
    template = '{"text": "{{ patient.name }} ({{ patient.id }}): {{ result.summary }}"}'
    settings = make_settings(tmp_path, {"teams": {"kind": "webhook", "url": hook.url, "template": template, "phi": True}})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["teams"])
    assert execute_job(settings, index, job_id) == "succeeded"
    text = json.loads(hook.requests[0]["body"])["text"]
    assert text.startswith(f"{STUDY.patient_name} ({STUDY.patient_id}): URGENT ct-lesion: 2 finding(s)")


def test_a_webhook_that_fails_is_retried(tmp_path, result_objects):
    peer = HttpPeer(lambda request: (502, "bad gateway"))
    peer.start()
    try:
        settings = make_settings(tmp_path, {"teams": {"kind": "webhook", "url": peer.url}})
        index = index_of(settings)
        [job_id] = store_result(settings, index, result_objects, ["teams"])
        assert execute_job(settings, index, job_id) == "retry"
        assert "502" in (job_row(index, job_id).error or "")
    finally:
        peer.stop()
