"""FHIR R4 for one AI result: a transaction Bundle of DiagnosticReport, ImagingStudy, Device and
Observations, validated with fhir.resources before it is POSTed to the server's base URL.

- DiagnosticReport: status preliminary (an algorithm's unverified result), category radiology
  (v2-0074 RAD), code = the imaging procedure the SR reports on, ``imagingStudy`` → the
  ImagingStudy, ``result`` → the Observations, conclusion = the one-line summary.
- ImagingStudy: the Study Instance UID as identifier ``urn:dicom:uid`` / ``urn:oid:…`` (the
  form FHIR's ImagingStudy page gives).
- Device: the algorithm (IHE AIR): name, version, model, the model checksum as a property and
  its DICOM Device UID as identifier. R4's DiagnosticReport has no device element, so each
  Observation names it in ``device``.
- Observation: one per SR finding (valueCodeableConcept, e.g. Lesion → Present) and one per
  measurement (valueQuantity in UCUM; a value the SR marks not assessable gets
  dataAbsentReason ``not-performed``), grouped by the SR's tracking identifier.

Every entry is a conditional create (``ifNoneExist`` on a stable identifier: DICOM UIDs, or
name-based UUIDs of them), so a re-sent result does not duplicate anything. The subject is a
logical reference by PatientID: the node does not create patients in the EHR.

fhir.resources validates with its R4B models (R4's technical correction; these five resources
are unchanged between R4 and R4B).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import httpx
from pydantic import ValidationError

from dicom_node.config import FhirDestination
from dicom_node.errors import DestinationError, PermanentError
from dicom_node.notify.report import Concept, FindingGroup, Measure, ResultReport

__all__ = ["DICOM_UID_SYSTEM", "build_bundle", "post_bundle"]

log = logging.getLogger(__name__)

DICOM_UID_SYSTEM = "urn:dicom:uid"
URI_SYSTEM = "urn:ietf:rfc:3986"
UCUM = "http://unitsofmeasure.org"
_SYSTEMS = {
    "SCT": "http://snomed.info/sct",
    "LN": "http://loinc.org",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "UCUM": UCUM,
    "RADLEX": "http://radlex.org",
}
_RADIOLOGY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}]}
_IMAGING = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging", "display": "Imaging"}]}
_NOT_PERFORMED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed"}]}
_NAMESPACE = uuid.UUID("6f0e5f0c-4f7e-5b2a-9d86-0f5b0d6c1a11")  # this module's name-based UUIDs


def _coding(concept: Concept) -> dict[str, Any]:
    system = _SYSTEMS.get(concept.scheme)
    coding = {"code": concept.code, "display": concept.meaning}
    return {"system": system, **coding} if system else coding


def _concept(concept: Concept, text: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(concept)], "text": text or concept.meaning}


def _oid(uid: str) -> dict[str, str]:
    return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}


def _name_uuid(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, '|'.join(parts))}"


def _entry(resource: dict[str, Any], identifier: dict[str, str]) -> dict[str, Any]:
    """A conditional create: the server keeps the one it has with this identifier."""
    full_url = _name_uuid(resource["resourceType"], identifier["system"], identifier["value"])
    return {
        "fullUrl": full_url,
        "resource": {**resource, "identifier": [identifier]},
        "request": {"method": "POST", "url": resource["resourceType"],
                    "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}"},
    }  # fmt: skip


def _fhir_date(date: str) -> str | None:
    """A DICOM DA as a FHIR date. The study time is left out: DICOM times are local and the
    node does not know the zone, and a FHIR dateTime with a time must have one."""
    return f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 and date.isdigit() else None


def build_bundle(report: ResultReport, report_uid: str) -> dict[str, Any]:
    """The transaction Bundle for ``report`` (``report_uid``: the result SR's SOP Instance UID),
    validated; PermanentError if fhir.resources refuses it (a bug here, not a passing fault)."""
    study = report.study
    subject = {"identifier": {"value": study.patient_id}} if study.patient_id else None
    imaging = _entry({
        "resourceType": "ImagingStudy", "status": "available", "subject": subject or {"display": "unknown"},
        **({"started": s} if (s := _fhir_date(study.study_date)) else {}),
        **({"description": study.study_description} if study.study_description else {}),
    }, _oid(study.study_uid))  # fmt: skip
    algorithm = report.algorithm
    device_id = _oid(algorithm.device_uid) if algorithm.device_uid else {"system": URI_SYSTEM, "value": _name_uuid(algorithm.name, algorithm.version)}
    device = _entry({
        "resourceType": "Device", "status": "active", "manufacturer": "dicom-node",
        "deviceName": [{"name": algorithm.name, "type": "model-name"}],
        **({"modelNumber": algorithm.model_name} if algorithm.model_name else {}),
        "version": [{"value": algorithm.version}] if algorithm.version else [],
        "property": [{"type": {"text": "model checksum"}, "valueCode": [{"text": algorithm.model_checksum}]}]
        if algorithm.model_checksum else [],
    }, device_id)  # fmt: skip
    common = {
        "status": "preliminary", "category": [_IMAGING], **({"subject": subject} if subject else {}),
        "device": {"reference": device["fullUrl"]}, "derivedFrom": [{"reference": imaging["fullUrl"]}],
    }  # fmt: skip
    observations = [
        _entry({"resourceType": "Observation", **common, **body}, {"system": URI_SYSTEM, "value": _name_uuid(report_uid, key)})
        for group in report.groups
        for key, body in _observations(group)
    ]
    diagnostic = _entry({
        "resourceType": "DiagnosticReport", "status": "preliminary", "category": [_RADIOLOGY],
        "code": _concept(report.procedure, f"AI {report.pipeline}") if report.procedure else {"text": f"AI {report.pipeline}"},
        **({"subject": subject} if subject else {}),
        **({"effectiveDateTime": e} if (e := _fhir_date(study.study_date)) else {}),
        "imagingStudy": [{"reference": imaging["fullUrl"]}],
        "result": [{"reference": o["fullUrl"]} for o in observations],
        "conclusion": report.summary(),
    }, _oid(report_uid))  # fmt: skip
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [imaging, device, *observations, diagnostic]}
    return _validated(bundle)


def _observations(group: FindingGroup) -> list[tuple[str, dict[str, Any]]]:
    """(stable key, Observation body) for a group's finding and each of its measurements."""
    tracking = group.tracking_uid or group.tracking_id
    site = {"bodySite": _concept(group.site)} if group.site else {}
    note = {"note": [{"text": group.tracking_id}]}
    out: list[tuple[str, dict[str, Any]]] = []
    for evaluation in group.evaluations:
        out.append((f"{tracking}|{evaluation.name.scheme}|{evaluation.name.code}", {
            "code": _concept(evaluation.name), "valueCodeableConcept": _concept(evaluation.value), **site, **note,
        }))  # fmt: skip
    for measure in group.measures:
        out.append((f"{tracking}|{measure.label}", {"code": _concept(measure.name, measure.label), **_value(measure), **site, **note}))
    return out


def _value(measure: Measure) -> dict[str, Any]:
    if measure.value is None:
        reason = measure.not_assessable.meaning if measure.not_assessable else "no value"
        return {"dataAbsentReason": {**_NOT_PERFORMED, "text": reason}}
    quantity: dict[str, Any] = {"value": round(measure.value, 6)}
    if measure.unit is not None:
        quantity.update(unit=measure.unit.meaning, system=UCUM, code=measure.unit.code)
    return {"valueQuantity": quantity}


def _validated(bundle: dict[str, Any]) -> dict[str, Any]:
    from fhir.resources.R4B.bundle import Bundle

    try:
        model = Bundle.model_validate(bundle)
    except ValidationError as exc:
        raise PermanentError(f"the FHIR Bundle does not validate: {exc}") from exc
    return json.loads(model.model_dump_json(exclude_none=True))


def post_bundle(dest: FhirDestination, bundle: dict[str, Any]) -> dict[str, Any]:
    """POST the transaction to the server's base URL; returns its transaction-response Bundle.

    Connection failures, 408, 429 and 5xx are transient (DestinationError, retried); another
    4xx is permanent, with the server's OperationOutcome text."""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if dest.auth_token:
        headers["Authorization"] = f"Bearer {dest.auth_token}"
    try:
        response = httpx.post(dest.base_url.rstrip("/") + "/", content=json.dumps(bundle), headers=headers, timeout=dest.timeout_s)
    except httpx.HTTPError as exc:
        raise DestinationError(f"FHIR server {dest.base_url} unreachable: {type(exc).__name__}: {exc}") from exc
    if response.is_success:
        try:
            answer: dict[str, Any] = response.json()
        except ValueError as exc:
            raise DestinationError(f"FHIR server answered {response.status_code} without JSON") from exc
        return answer
    why = f"FHIR server answered {response.status_code}: {_outcome(response)}"
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise DestinationError(why)
    raise PermanentError(why)


def _outcome(response: httpx.Response) -> str:
    """The OperationOutcome's issue texts, else the start of the body."""
    try:
        issues = response.json().get("issue", [])
        texts = [i.get("diagnostics") or i.get("details", {}).get("text", "") for i in issues]
        return "; ".join(t for t in texts if t) or response.text[:200]
    except (ValueError, AttributeError):
        return response.text[:200]
