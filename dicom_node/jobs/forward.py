"""Forwarding (auto-routing a study) and sending results: C-STORE/STOW with per-instance retry.

A partial failure records the instances still to send on the job, so the retry sends only
those; the job fails transiently until every instance is accepted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import update

from dicom_node.config import Settings
from dicom_node.errors import DestinationError
from dicom_node.jobs.outcome import Outcome
from dicom_node.send import send_files
from dicom_node.store.index import Index
from dicom_node.store.models import Job

__all__ = ["run_forward", "run_send"]

log = logging.getLogger(__name__)


def _remember_remaining(index: Index, job: Job, remaining: list[str]) -> None:
    with index.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job.id).values(params={**job.params, "remaining": remaining}))


def _deliver(settings: Settings, index: Index, job: Job, paths: list[str]) -> Outcome:
    remaining = job.params.get("remaining")
    todo = [Path(p) for p in (remaining if remaining is not None else paths)]
    assert job.destination is not None
    try:
        report = send_files(settings, job.destination, todo)
    except DestinationError:
        _remember_remaining(index, job, [str(p) for p in todo])
        raise
    if report.failed:
        left = [str(p) for p in report.failed]
        _remember_remaining(index, job, left)
        why = "; ".join(sorted(set(report.failed.values())))
        raise DestinationError(f"{len(left)} of {len(todo)} instances refused by {job.destination} ({why})", left)
    _remember_remaining(index, job, [])
    return Outcome(
        summary=f"{len(report.sent)} instance(s) sent to {job.destination}",
        data={"sent": len(report.sent), "warnings": len(report.warnings), "destination": job.destination},
    )


def run_forward(settings: Settings, index: Index, job: Job) -> Outcome:
    """Forward the study's routed series (all of them when the job names none)."""
    assert job.study_uid is not None
    series = job.params.get("series") or [None]
    paths = [p for s in series for p in index.instance_paths(job.study_uid, s)]
    return _deliver(settings, index, job, paths)


def run_send(settings: Settings, index: Index, job: Job) -> Outcome:
    """Send the files a pipeline produced (``params.paths``) back to a destination."""
    return _deliver(settings, index, job, list(job.params.get("paths", [])))
