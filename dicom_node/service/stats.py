"""Figures over the last hours, from the index (where every process's work ends up): queue
depths now, and per time bucket the jobs finished (throughput) and their time to result —
from the job's creation (the router queueing it once the study was complete) to its result."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from dicom_node.store.index import Index
from dicom_node.store.models import Job, utcnow

__all__ = ["WAITING", "Bucket", "health", "history", "queue_depths", "state_counts"]

WAITING = ("pending", "queued", "retry", "running")  # in a queue or on a worker


def queue_depths(index: Index) -> dict[str, dict[str, int]]:
    """queue → state → number of jobs not finished."""
    with index.sessions() as session:
        rows = session.execute(select(Job.queue, Job.state, func.count(Job.id)).where(Job.state.in_(WAITING)).group_by(Job.queue, Job.state))
        out: dict[str, dict[str, int]] = {}
        for queue, state, count in rows:
            out.setdefault(queue, {})[state] = count
    return out


def state_counts(index: Index) -> dict[str, int]:
    with index.sessions() as session:
        return {state: count for state, count in session.execute(select(Job.state, func.count(Job.id)).group_by(Job.state))}


@dataclass(frozen=True)
class Bucket:
    """One time bucket: jobs that finished in it, how many failed for good, and the median
    and largest time to result of the successful ones (None when there were none)."""

    start: dt.datetime
    succeeded: int
    dead: int
    median_s: float | None
    max_s: float | None


def history(index: Index, hours: int = 6, bucket_minutes: int = 15, now: dt.datetime | None = None) -> list[Bucket]:
    """Buckets covering the last ``hours``, oldest first; empty buckets included so a plot
    shows quiet time as quiet."""
    now = now or utcnow()
    width = dt.timedelta(minutes=bucket_minutes)
    first = now - dt.timedelta(hours=hours)
    with index.sessions() as session:
        rows = session.execute(
            select(Job.state, Job.created_at, Job.finished_at).where(Job.finished_at >= first, Job.state.in_(("succeeded", "dead")))
        ).all()
    count = -(-hours * 60 // bucket_minutes)
    done: list[list[float]] = [[] for _ in range(count)]
    dead = [0] * count
    for state, created, finished in rows:
        if finished is None:  # excluded by the query; says so to the type checker
            continue
        slot = min(int((finished - first) / width), count - 1)
        if state == "dead":
            dead[slot] += 1
        else:
            done[slot].append(max((finished - created).total_seconds(), 0.0))
    return [
        Bucket(first + i * width, len(d), dead[i], statistics.median(d) if d else None, max(d) if d else None)
        for i, d in enumerate(done)
    ]


def health(index: Index) -> dict[str, Any]:
    """What an operator looks at first: job states, queue depths, dead letters, the oldest
    waiting job's age."""
    with index.sessions() as session:
        oldest = session.scalar(select(func.min(Job.created_at)).where(Job.state.in_(("pending", "queued", "retry"))))
    states = state_counts(index)
    return {
        "jobs": states,
        "queues": queue_depths(index),
        "dead_letters": states.get("dead", 0),
        "oldest_waiting_s": (utcnow() - oldest).total_seconds() if oldest else None,
    }
