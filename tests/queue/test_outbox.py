"""The job outbox's state machine on a real SQLite index: claims, leases, retries, dead letters,
and a relay that keeps jobs while the broker is down."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from dicom_node.config import QueueSettings
from dicom_node.queue import outbox
from dicom_node.queue.outbox import NewJob, Relay
from dicom_node.store.index import Index
from dicom_node.store.models import Job, JobEvent, utcnow


@pytest.fixture
def index(tmp_path) -> Index:
    return Index(f"sqlite:///{tmp_path / 'index.sqlite'}")


QS = QueueSettings(max_attempts=3, retry_base_s=10, lease_s=30)


def _add(index: Index, priority: int = 5) -> int:
    with index.sessions.begin() as session:
        [job] = outbox.add_jobs(session, [NewJob(kind="forward", queue="send", study_uid="1.2", destination="a", priority=priority)], 3)
        return job.id


def _job(index: Index, job_id: int) -> Job:
    with index.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_job_is_claimed_once_and_finishes_once(index):
    job_id = _add(index)
    held = outbox.claim(index, job_id, lease_s=30)
    assert held is not None and held.attempt == 1
    assert outbox.claim(index, job_id, lease_s=30) is None, "a second delivery must not run it again"
    assert outbox.finish(index, held, {"summary": "ok"})
    assert outbox.finish(index, held, {"summary": "again"}) is False
    job = _job(index, job_id)
    assert job.state == "succeeded" and job.result == {"summary": "ok"}
    with index.sessions() as session:
        events = session.scalars(select(JobEvent.event).where(JobEvent.job_id == job_id)).all()
    assert events == ["created", "started", "finished"]


def test_transient_failures_back_off_then_dead_letter(index):
    job_id = _add(index)
    states = []
    for attempt in range(3):
        held = outbox.claim(index, job_id, lease_s=30)
        assert held is not None and held.attempt == attempt + 1
        states.append(outbox.fail(index, held, "refused", transient=True, settings=QS))
        job = _job(index, job_id)
        if job.state == "retry":
            assert job.next_attempt_at - utcnow() > dt.timedelta(seconds=10 * 2**attempt - 2)
    assert states == ["retry", "retry", "dead"]
    assert _job(index, job_id).error == "refused"
    with index.sessions() as session:
        last = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id.desc())).first()
    assert last.event == "dead" and "attempts exhausted" in last.detail
    assert outbox.retry_by_hand(index, job_id)
    job = _job(index, job_id)
    assert job.state == "pending" and job.attempts == 0


def test_permanent_failure_is_dead_at_once(index):
    job_id = _add(index)
    held = outbox.claim(index, job_id, lease_s=30)
    assert outbox.fail(index, held, "one slice", transient=False, settings=QS) == "dead"


def test_relay_dispatches_stat_first_and_keeps_jobs_while_broker_is_down(index):
    routine, stat = _add(index, priority=5), _add(index, priority=0)
    sent: list[int] = []
    broker_up = False

    def send(job_id: int, queue: str, priority: int) -> None:
        if not broker_up:
            raise ConnectionError("broker down")
        sent.append(job_id)

    relay = Relay(index, QS, send)
    assert relay.dispatch_due() == 0
    assert {_job(index, j).state for j in (routine, stat)} == {"pending"}
    broker_up = True
    assert relay.dispatch_due() == 2
    assert sent == [stat, routine]
    assert _job(index, stat).state == "queued"


def test_an_expired_lease_is_redispatched_and_the_old_holder_cannot_finish(index):
    job_id = _add(index)
    stale = outbox.claim(index, job_id, lease_s=30)
    with index.sessions.begin() as session:  # the worker died: its lease ran out
        session.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    sent: list[int] = []
    Relay(index, QS, lambda j, q, p: sent.append(j)).dispatch_due()
    assert sent == [job_id]
    fresh = outbox.claim(index, job_id, lease_s=30)
    assert fresh is not None and fresh.attempt == 2
    assert outbox.finish(index, stale, {"summary": "zombie"}) is False
    assert outbox.finish(index, fresh, {"summary": "ok"})
    assert _job(index, job_id).result == {"summary": "ok"}


def test_queued_job_lost_by_the_broker_is_resent(index):
    job_id = _add(index)
    relay = Relay(index, QueueSettings(requeue_after_s=5), lambda j, q, p: None)
    relay.dispatch_due()
    assert relay.dispatch_due() == 0, "not yet: it may still be in the broker"
    with index.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(queued_at=utcnow() - dt.timedelta(seconds=6)))
    assert relay.dispatch_due() == 1
