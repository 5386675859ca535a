"""``notify`` jobs: telling an hl7, fhir or webhook destination about a pipeline's result.

A notification is an outbox job like a ``send``: created with the result (in the pipeline job,
after its SEG/SR are stored), run on the ``send`` queue, retried with back-off, dead-lettered,
retryable with ``dicom-node jobs retry`` and on the study's timeline. Its content is read from
the stored SR (:mod:`.report`), never re-computed. A pipeline that ends in the dead letter tells
its hl7 destinations with ``send_failures: true`` (ORU with OBR-25 X and the reason).

Identifiers are stable across re-sends of one notification: MSH-10 derives from the node, the
job and the result; the filler order number (ORC-3/OBR-3) from the series and the pipeline, so a
failure notice and a later result of the same analysis update one order at the receiver.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

from dicom_node.config import (
    FhirDestination,
    Hl7Destination,
    Settings,
    WebhookDestination,
)
from dicom_node.errors import PermanentError
from dicom_node.jobs.outcome import Outcome
from dicom_node.notify import fhir, hl7, mllp, webhook
from dicom_node.notify.report import (
    Algorithm,
    ResultObject,
    ResultReport,
    read_report,
    study_facts,
)
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.store.index import Index
from dicom_node.store.models import Job

__all__ = ["announce_failure", "control_id", "filler_order", "result_notices", "run_notify"]

log = logging.getLogger(__name__)

_SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # every Structured Report storage class (PS3.4 B.5)


def result_notices(job: Job, results: list[dict[str, str]], urgent: bool) -> list[NewJob]:
    """The notify jobs for a finished pipeline job: one per destination in its ``notify`` list."""
    params = {"pipeline_job": job.id, "results": results, "urgent": urgent}
    return [
        NewJob(kind="notify", queue="send", study_uid=job.study_uid, series_uid=job.series_uid, rule=job.rule,
               pipeline=job.pipeline, destination=dest, priority=0 if urgent else job.priority, params=params)
        for dest in job.params.get("notify", [])
    ]  # fmt: skip


def announce_failure(settings: Settings, index: Index, job_id: int) -> int:
    """Queue failure notices for a pipeline job that went to the dead letter; returns how many."""
    with index.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != "pipeline" or job.state != "dead":
            return 0
        targets = [d for d in job.params.get("notify", []) if _sends_failures(settings, d)]
        notices = [
            NewJob(kind="notify", queue="send", study_uid=job.study_uid, series_uid=job.series_uid, rule=job.rule,
                   pipeline=job.pipeline, destination=d, priority=job.priority,
                   params={"pipeline_job": job.id, "failure": job.error or "failed"})
            for d in targets
        ]  # fmt: skip
        add_jobs(session, notices, settings.queue.max_attempts)
    return len(notices)


def _sends_failures(settings: Settings, name: str) -> bool:
    dest = settings.destinations.get(name)
    return isinstance(dest, Hl7Destination) and dest.send_failures


def control_id(settings: Settings, job: Job) -> str:
    """MSH-10 (ST, at most 20 characters in v2.5.1): the same for every attempt of one job."""
    what = job.params.get("failure") or ",".join(r["sop_instance_uid"] for r in job.params.get("results", []))
    return hashlib.sha256(f"{settings.ae_title}|{job.id}|{job.destination}|{what}".encode()).hexdigest()[:20]


def filler_order(series_uid: str, pipeline: str) -> str:
    """ORC-3/OBR-3: one per analysis of a series by a pipeline, result or failure."""
    return "AI" + hashlib.sha256(f"{series_uid}|{pipeline}".encode()).hexdigest()[:18]


def _report(index: Index, job: Job) -> ResultReport:
    pipeline = job.pipeline or ""
    if "failure" in job.params:
        facts = study_facts(index, job.study_uid or "")
        return ResultReport(facts, pipeline, Algorithm(pipeline, ""), None, [], [], False, failure=str(job.params["failure"]))
    results = job.params.get("results", [])
    objects = [ResultObject(r["sop_instance_uid"], r["sop_class_uid"]) for r in results]
    report_sr = next((r for r in results if r["sop_class_uid"].startswith(_SR_CLASS_PREFIX)), None)
    if report_sr is None:
        raise PermanentError("the pipeline stored no SR to report")
    return read_report(Path(report_sr["path"]), objects, pipeline)


def run_notify(settings: Settings, index: Index, job: Job) -> Outcome:
    """Send one notification; DestinationError (retried) or PermanentError when it is not taken."""
    dest = settings.destinations.get(job.destination or "")
    if dest is None:
        raise PermanentError(f"unknown destination {job.destination!r}")
    report = _report(index, job)
    what = f"study {job.study_uid}, job {job.id}"
    if isinstance(dest, Hl7Destination):
        cid = control_id(settings, job)
        message = hl7.build_oru(report, dest, cid, filler_order(job.series_uid or "", report.pipeline), dt.datetime.now())
        ack = mllp.send_message(dest.host, dest.port, message, cid, dest.connect_timeout_s, dest.ack_timeout_s)
        log.info("ORU^R01 %s accepted by %s (%s)", cid, job.destination, what)
        status = "X (failed)" if report.failure is not None else "P"
        data: dict[str, Any] = {"destination": job.destination, "control_id": cid, "ack": ack.code, "result_status": status}
        return Outcome(summary=f"ORU^R01 {cid} (OBR-25 {status}) acknowledged {ack.code} by {job.destination}", data=data)
    if isinstance(dest, FhirDestination):
        if report.failure is not None:
            raise PermanentError("a FHIR destination is sent results, not failures")
        report_uid = next(o.sop_instance_uid for o in report.objects if o.sop_class_uid.startswith(_SR_CLASS_PREFIX))
        answer = fhir.post_bundle(dest, fhir.build_bundle(report, report_uid))
        statuses = [e.get("response", {}).get("status", "") for e in answer.get("entry", [])]
        log.info("FHIR transaction of %d entries accepted by %s (%s)", len(statuses), job.destination, what)
        data = {"destination": job.destination, "entries": len(statuses), "statuses": statuses}
        return Outcome(summary=f"FHIR Bundle ({len(statuses)} entries) accepted by {job.destination}", data=data)
    if isinstance(dest, WebhookDestination):
        code = webhook.post_webhook(dest, webhook.render(dest, report))
        log.info("webhook %s answered %d (%s)", job.destination, code, what)
        return Outcome(summary=f"webhook {job.destination} answered {code}", data={"destination": job.destination, "status": code})
    raise PermanentError(f"destination {job.destination!r} is {dest.kind}: not a notification destination")
