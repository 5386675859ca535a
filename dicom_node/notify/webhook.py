"""Webhooks: a POST per result to a chat or dashboard URL, the body rendered from a Jinja
template (sandboxed: a template is configuration, not code).

A template sees ``result`` (pipeline, summary, urgent, findings with their measurements,
algorithm, Study Instance UID: nothing that names the patient) and, only on a destination with
``phi: true``, ``patient`` (id, name, birth date, sex, accession number). A template that uses
``patient`` without ``phi: true`` is refused when the settings load, so a chat channel cannot
receive a name by mistake. Without a template the body is ``result`` as JSON.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from dicom_node.errors import DestinationError, PermanentError
from dicom_node.notify.report import ResultReport

if TYPE_CHECKING:
    from dicom_node.config import WebhookDestination

__all__ = ["check_template", "context", "post_webhook", "render"]

log = logging.getLogger(__name__)

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_SAFE = {"result"}
_PHI = {"patient"}


def check_template(template: str, phi: bool) -> None:
    """ValueError when ``template`` does not parse or uses a variable it may not see."""
    try:
        names = meta.find_undeclared_variables(_ENV.parse(template))
    except TemplateError as exc:
        raise ValueError(f"webhook template does not parse: {exc}") from exc
    if names & _PHI and not phi:
        raise ValueError("webhook template uses 'patient' but the destination does not have phi: true")
    unknown = names - _SAFE - _PHI
    if unknown:
        raise ValueError(f"webhook template uses unknown variable(s) {sorted(unknown)}; it sees result and patient")


def context(report: ResultReport, phi: bool) -> dict[str, Any]:
    """What a template sees; ``patient`` only when ``phi``."""
    result = {
        "pipeline": report.pipeline,
        "summary": report.summary(),
        "urgent": report.urgent,
        "failed": report.failure is not None,
        "study_uid": report.study.study_uid,
        "algorithm": {"name": report.algorithm.name, "version": report.algorithm.version,
                      "device_uid": report.algorithm.device_uid},
        "findings": [
            {
                "tracking_id": g.tracking_id, "present": g.present, "text": g.text(),
                "finding": g.finding.meaning if g.finding else None, "site": g.site.meaning if g.site else None,
                "measurements": [{"name": m.label, "value": m.value, "unit": m.unit.code if m.unit else None} for m in g.measures],
            }
            for g in report.groups
        ],
    }  # fmt: skip
    if not phi:
        return {"result": result}
    s = report.study
    patient = {"id": s.patient_id, "name": s.patient_name, "birth_date": s.birth_date, "sex": s.sex,
               "accession_number": s.accession_number}  # fmt: skip
    return {"result": result, "patient": patient}


def render(dest: WebhookDestination, report: ResultReport) -> str:
    """The request body for ``report``; PermanentError when the template fails on it."""
    values = context(report, dest.phi)
    if dest.template is None:
        return json.dumps(values["result"])
    try:
        return _ENV.from_string(dest.template).render(**values)
    except TemplateError as exc:
        raise PermanentError(f"webhook template failed: {exc}") from exc


def post_webhook(dest: WebhookDestination, body: str) -> int:
    """POST ``body``; returns the HTTP status. Connection errors, 408, 429 and 5xx are
    transient; another 4xx is permanent."""
    headers = {"Content-Type": "application/json", **dest.headers}
    try:
        response = httpx.post(dest.url, content=body.encode(), headers=headers, timeout=dest.timeout_s)
    except httpx.HTTPError as exc:
        raise DestinationError(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc
    if response.is_success:
        return response.status_code
    why = f"webhook answered {response.status_code}: {response.text[:200]}"
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise DestinationError(why)
    raise PermanentError(why)
