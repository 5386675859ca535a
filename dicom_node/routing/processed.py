"""A pipeline runs once on one input: the router creates no imaging job for a series content and
pipeline version that an earlier job was given (issue 12 item 5: a PACS auto-routing the study
the node's results changed sends its images back, and the node ran the pipeline again).

A job's input is the set of its series' SOP Instance UIDs in the index when the study is routed,
with the pipeline's name and version. A SOP Instance UID names one instance for good (PS3.3
C.12.1.1.1), so the same series sent again has the same set and creates nothing, while a series
that gained or lost instances has another and runs again. File sizes or checksums are left out
on purpose: a PACS may send the same instance in another transfer syntax (other bytes, the same
instance).

An earlier job for the key that is pending, queued, running, retrying or succeeded has the input
in hand; a dead or cancelled one has not, so sending the series again retries it.
``dicom-node jobs retry ID`` runs a succeeded job again on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.queue.outbox import NewJob
from dicom_node.store.models import Instance, Job, ProcessedInput, Series

__all__ = ["IN_HAND", "Admission", "InputKey", "admit", "record"]

IN_HAND = ("pending", "queued", "running", "retry", "succeeded")


@dataclass(frozen=True)
class InputKey:
    """One pipeline version on one series content."""

    series_uid: str
    pipeline: str
    version: str
    content_digest: str
    instances: int


@dataclass
class Admission:
    """The planned jobs split: those to create (with their input keys, None for jobs that are not
    imaging pipelines) and those whose input an earlier job already has."""

    jobs: list[NewJob] = field(default_factory=list)
    keys: list[InputKey | None] = field(default_factory=list)
    skipped: list[tuple[InputKey, Job]] = field(default_factory=list)


def _input_key(session: Session, series_uid: str, pipeline: str, version: str) -> InputKey:
    uids = sorted(session.scalars(select(Instance.sop_instance_uid).join(Series).where(Series.series_uid == series_uid)))
    digest = hashlib.sha256("\n".join(uids).encode()).hexdigest()
    return InputKey(series_uid, pipeline, version, digest, len(uids))


def _earlier_job(session: Session, key: InputKey) -> Job | None:
    return session.scalar(
        select(Job)
        .join(ProcessedInput, ProcessedInput.job_id == Job.id)
        .where(ProcessedInput.series_uid == key.series_uid, ProcessedInput.pipeline == key.pipeline)
        .where(ProcessedInput.version == key.version, ProcessedInput.content_digest == key.content_digest)
        .where(Job.state.in_(IN_HAND))
        .order_by(Job.id.desc())
        .limit(1)
    )


def admit(session: Session, jobs: list[NewJob], version_of: Callable[[str], str]) -> Admission:
    """Split ``jobs`` (one routing of a study) into those to create and those already in hand.

    Jobs of one routing are not checked against each other: two rules running the same
    pipeline on a series (with other destinations) both still get their job, as before.
    """
    admission = Admission()
    for job in jobs:
        if job.kind != "pipeline" or job.pipeline is None or job.series_uid is None:
            admission.jobs.append(job)
            admission.keys.append(None)
            continue
        key = _input_key(session, job.series_uid, job.pipeline, version_of(job.pipeline))
        earlier = _earlier_job(session, key)
        if earlier is not None:
            admission.skipped.append((key, earlier))
        else:
            admission.jobs.append(job)
            admission.keys.append(key)
    return admission


def record(session: Session, admission: Admission, rows: list[Job]) -> None:
    """Record the input of each created pipeline job (``rows``: ``admission.jobs`` as persisted)."""
    for key, row in zip(admission.keys, rows, strict=True):
        if key is not None:
            session.add(ProcessedInput(
                series_uid=key.series_uid, pipeline=key.pipeline, version=key.version,
                content_digest=key.content_digest, instances=key.instances, job_id=row.id,
            ))  # fmt: skip
