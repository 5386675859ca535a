"""Jobs as the outbox holds them (:mod:`dicom_node.queue.outbox`): listed by filter, retried,
cancelled. Cancelling is a conditional UPDATE like every other state change, so a worker that
claims the job at the same moment wins or loses cleanly: a claim needs pending/queued/retry,
which a cancelled job no longer is."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Literal, cast, get_args

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult

from dicom_node.queue.outbox import retry_by_hand
from dicom_node.service import Conflict, NotFound
from dicom_node.store.index import Index
from dicom_node.store.models import Job, JobEvent, utcnow

__all__ = ["CANCELLABLE", "FAILED", "STATES", "State", "cancel", "dead_letters", "duration_s", "get_job", "job_dict", "list_jobs", "retry"]

log = logging.getLogger(__name__)

State = Literal["pending", "queued", "running", "succeeded", "retry", "dead", "cancelled"]
STATES: tuple[str, ...] = get_args(State)
FAILED = ("dead", "retry")  # what `jobs --failed` and the dashboard's failure list show
CANCELLABLE = ("pending", "queued", "retry")  # not yet claimed by a worker


def list_jobs(
    index: Index,
    *,
    states: Sequence[str] = (),
    queue: str | None = None,
    pipeline: str | None = None,
    study_uid: str | None = None,
    limit: int = 500,
) -> list[Job]:
    """Jobs newest first, narrowed by every filter given."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if states:
        query = query.where(Job.state.in_(tuple(states)))
    if queue:
        query = query.where(Job.queue == queue)
    if pipeline:
        query = query.where(Job.pipeline == pipeline)
    if study_uid:
        query = query.where(Job.study_uid == study_uid)
    with index.sessions() as session:
        return list(session.scalars(query))


def dead_letters(index: Index, limit: int = 500) -> list[Job]:
    """Jobs that failed for good: permanent errors or attempts exhausted; retryable by hand."""
    return list_jobs(index, states=("dead",), limit=limit)


def get_job(index: Index, job_id: int) -> Job:
    with index.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def retry(index: Index, job_id: int) -> None:
    """Start a dead, waiting or finished job over with fresh attempts."""
    if not retry_by_hand(index, job_id):
        state = get_job(index, job_id).state  # NotFound when there is none
        raise Conflict(f"job {job_id} is {state}: only dead, retry-waiting or succeeded jobs can be retried")
    log.info("job %d retried by hand", job_id)


def cancel(index: Index, job_id: int) -> None:
    """Cancel a job no worker has claimed yet; a running or finished one is a Conflict."""
    with index.sessions.begin() as session:
        statement = update(Job).where(Job.id == job_id, Job.state.in_(CANCELLABLE))
        statement = statement.values(state="cancelled", finished_at=utcnow(), next_attempt_at=None)
        done = cast(CursorResult[Any], session.execute(statement))  # an UPDATE's result: it has a rowcount
        if done.rowcount == 1:
            job = session.get(Job, job_id)
            session.add(JobEvent(study_uid=job.study_uid if job else None, job_id=job_id, event="cancelled", detail="by hand"))
    if done.rowcount != 1:
        state = get_job(index, job_id).state
        raise Conflict(f"job {job_id} is {state}: only {', '.join(CANCELLABLE)} jobs can be cancelled")
    log.info("job %d cancelled by hand", job_id)


def duration_s(job: Job, now: dt.datetime | None = None) -> float | None:
    """Seconds the job ran (so far, while running); None before it started."""
    if job.started_at is None:
        return None
    end = job.finished_at if job.state != "running" and job.finished_at else (now or utcnow())
    return max((end - job.started_at).total_seconds(), 0.0)


def job_dict(job: Job) -> dict[str, Any]:
    """Every column, times in ISO 8601 (UTC), plus the duration."""
    values = {c.name: getattr(job, c.name) for c in Job.__table__.columns if c.name != "claim_token"}
    out = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in values.items()}
    out["duration_s"] = duration_s(job)
    return out
