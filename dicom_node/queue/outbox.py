"""The job outbox: every job is a row before it is a broker message, and every state change is
a conditional UPDATE, so a crash, a lost message or a redelivery never loses or doubles work.

States: ``pending`` → ``queued`` (handed to the broker) → ``running`` (claimed under a lease,
kept alive by heart-beats) → ``succeeded``, or ``retry`` (transient failure, due again after
exponential back-off) or ``dead`` (permanent failure or attempts exhausted: the dead letter,
visible in ``dicom-node jobs --failed`` and retryable with ``dicom-node jobs retry ID``).

The relay re-dispatches what is due: pending and retry jobs, queued jobs not started within
``requeue_after_s`` (a broker that lost its messages) and running jobs whose lease expired
(a worker that died). Replicas sharing a PostgreSQL index each run a relay: a job's row is
locked from being chosen until it is marked queued (``SKIP LOCKED``), so they hand out
different jobs, and one killed mid-way leaves its job due for the others at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dicom_node.config import QueueSettings
from dicom_node.store.index import Index
from dicom_node.store.models import Job, JobEvent, utcnow
from dicom_node.ticker import Ticker

__all__ = ["Claim", "NewJob", "add_jobs", "claim", "heartbeat", "finish", "fail", "retry_by_hand", "Relay"]

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}"


@dataclass(frozen=True)
class NewJob:
    """What the router (or a user) asks to be done."""

    kind: str
    queue: str
    study_uid: str | None = None
    series_uid: str | None = None
    rule: str | None = None
    pipeline: str | None = None
    destination: str | None = None
    priority: int = 5
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a job: the token makes its finish count only while the lease is its own."""

    job_id: int
    token: str
    attempt: int


def add_jobs(session: Session, jobs: list[NewJob], max_attempts: int) -> list[Job]:
    """Persist jobs as ``pending`` inside the caller's transaction (with its triggering event)."""
    rows = [
        Job(
            kind=j.kind, queue=j.queue, study_uid=j.study_uid, series_uid=j.series_uid, rule=j.rule,
            pipeline=j.pipeline, destination=j.destination, priority=j.priority, params=j.params or {},
            max_attempts=max_attempts, state="pending",
        )  # fmt: skip
        for j in jobs
    ]
    session.add_all(rows)
    session.flush()
    for row in rows:
        what = row.pipeline or row.destination or row.kind
        session.add(JobEvent(study_uid=row.study_uid, job_id=row.id, event="created", detail=f"{row.kind}: {what}"))
    return rows


def claim(index: Index, job_id: int, lease_s: float, worker: str = WORKER) -> Claim | None:
    """Take the job if nobody holds it; None when it is done, dead or held by a live worker."""
    token = str(uuid.uuid4())
    now = utcnow()
    with index.sessions.begin() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id)
            .where(Job.state.in_(("pending", "queued", "retry")))
            .values(
                state="running", attempts=Job.attempts + 1, worker=worker, started_at=now,
                lease_until=now + dt.timedelta(seconds=lease_s), claim_token=token, error=None,
            )  # fmt: skip
        )
        if result.rowcount != 1:
            return None
        job = session.get(Job, job_id)
        assert job is not None
        session.add(JobEvent(study_uid=job.study_uid, job_id=job_id, event="started", worker=worker, detail=f"attempt {job.attempts}"))
        return Claim(job_id, token, job.attempts)


def heartbeat(index: Index, held: Claim, lease_s: float) -> bool:
    """Extend the lease; False when the job is no longer ours."""
    with index.sessions.begin() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == held.job_id, Job.claim_token == held.token, Job.state == "running")
            .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
        )
        return result.rowcount == 1


def finish(index: Index, held: Claim, result: dict[str, Any], urgent: bool = False) -> bool:
    """Record success; ignored (False) if the lease was lost and the job went to someone else."""
    now = utcnow()
    with index.sessions.begin() as session:
        done = session.execute(
            update(Job)
            .where(Job.id == held.job_id, Job.claim_token == held.token, Job.state == "running")
            .values(state="succeeded", finished_at=now, result=result, urgent=urgent, lease_until=None)
        )
        if done.rowcount != 1:
            log.warning("job %d finished after losing its lease; result discarded", held.job_id)
            return False
        job = session.get(Job, held.job_id)
        assert job is not None
        duration = (now - job.started_at).total_seconds() if job.started_at else None
        detail = str(result.get("summary", "")) if result else ""
        session.add(JobEvent(study_uid=job.study_uid, job_id=job.id, event="finished", worker=job.worker, duration_s=duration, detail=detail))
        return True


def fail(index: Index, held: Claim, error: str, transient: bool, settings: QueueSettings) -> str:
    """Record a failure: ``retry`` with back-off while attempts remain and it may pass, else ``dead``."""
    now = utcnow()
    with index.sessions.begin() as session:
        job = session.get(Job, held.job_id)
        if job is None or job.claim_token != held.token or job.state != "running":
            return "lost"
        if transient and job.attempts < job.max_attempts:
            delay = min(settings.retry_base_s * 2 ** (job.attempts - 1), settings.retry_max_s)
            job.state, job.next_attempt_at = "retry", now + dt.timedelta(seconds=delay)
            detail = f"attempt {job.attempts}/{job.max_attempts} failed: {error}; retry in {delay:.0f}s"
        else:
            job.state = "dead"
            why = "attempts exhausted" if transient else "permanent failure"
            detail = f"{why}: {error}"
        job.error, job.finished_at, job.lease_until = error, now, None
        duration = (now - job.started_at).total_seconds() if job.started_at else None
        session.add(JobEvent(study_uid=job.study_uid, job_id=job.id, event=job.state, worker=job.worker, duration_s=duration, detail=detail))
        log.warning("job %d %s: %s", job.id, job.state, detail)
        return job.state


def retry_by_hand(index: Index, job_id: int) -> bool:
    """``dicom-node jobs retry``: a dead (or retry-waiting) job starts over with fresh attempts."""
    with index.sessions.begin() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(("dead", "retry", "succeeded")))
            .values(state="pending", attempts=0, next_attempt_at=None, error=None)
        )
        if result.rowcount == 1:
            session.add(JobEvent(job_id=job_id, study_uid=session.get(Job, job_id).study_uid, event="retried", detail="by hand"))  # type: ignore[union-attr]
        return result.rowcount == 1


class Sender(Protocol):
    def __call__(self, job_id: int, queue: str, priority: int) -> None: ...


class Relay(Ticker):
    """Hands due jobs to the broker; runs in the node process as a thread."""

    def __init__(self, index: Index, settings: QueueSettings, send: Sender) -> None:
        self.index = index
        self.settings = settings
        self.send = send
        self._broker_down = False
        super().__init__("outbox-relay")

    def tick(self) -> None:
        self.dispatch_due()

    def interval(self) -> float:
        return 2.0 if self._broker_down else self.settings.relay_interval_s

    def dispatch_due(self, limit: int = 200) -> int:
        """Send every due job (stat first); returns how many went to the broker."""
        sent = 0
        while sent < limit:
            try:
                if not self._dispatch_one():
                    break
            except BrokerUnavailable as exc:  # the job's transaction rolled back: it waits in the outbox
                if not self._broker_down:
                    log.error("broker unavailable (%s); jobs wait in the outbox", exc.__cause__)
                self._broker_down = True
                break
            if self._broker_down:
                log.info("broker reachable again; dispatching waiting jobs")
                self._broker_down = False
            sent += 1
        return sent

    def _dispatch_one(self) -> bool:
        """Hand the most urgent due job to the broker; False when none is due.

        The job's row stays locked (``FOR UPDATE SKIP LOCKED``) from choosing it until it is
        marked queued, so relays of several replicas hand out different jobs, and a relay killed
        in between leaves the job as it was, due for the next relay at once. A send whose mark
        is lost (the process dies just after it) makes a second message, which is harmless:
        only one worker can claim the job (:func:`claim`).
        """
        now = utcnow()
        with self.index.sessions.begin() as session:
            job = session.scalar(
                select(Job)
                .where(
                    or_(
                        Job.state == "pending",
                        (Job.state == "retry") & (Job.next_attempt_at <= now),
                        (Job.state == "queued") & (Job.queued_at < now - dt.timedelta(seconds=self.settings.requeue_after_s)),
                        (Job.state == "running") & (Job.lease_until < now),
                    )
                )
                .order_by(Job.priority, Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job is None:
                return False
            from_state = job.state
            try:
                self.send(job.id, job.queue, job.priority)
            except Exception as exc:  # any failure to reach the broker leaves the job due
                raise BrokerUnavailable from exc
            values: dict[str, Any] = {"state": "queued", "queued_at": utcnow()}
            if from_state == "running":
                values["claim_token"] = None  # the expired holder may no longer finish
            # conditional: on SQLite (no row locks) a worker may have claimed it meanwhile
            marked = session.execute(update(Job).where(Job.id == job.id, Job.state == from_state).values(**values))
            if marked.rowcount == 1:
                detail = "lease expired, re-dispatched" if from_state == "running" else f"queue {job.queue}"
                session.add(JobEvent(study_uid=job.study_uid, job_id=job.id, event="queued", detail=detail))
            return True


class BrokerUnavailable(Exception):
    """The broker refused a job; raised inside the job's transaction so that it rolls back."""
