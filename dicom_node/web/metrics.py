"""Prometheus metrics of the node, served at ``/metrics``.

The node runs in several processes (serve, receivers, workers), and what they do ends up in
the index: instances and their sizes, jobs with their states, start and finish times. So the
node-wide figures are computed from the index at scrape time (:class:`IndexCollector`) rather
than counted in each process with prometheus-client's multiprocess mode, which needs an
environment variable and a shared folder set before every process imports the client, and
counters wiped by hand on each restart. Computed from rows that stay, they are also right
after a restart. Histograms are built by counting rows under each bucket bound in SQL.

Counted in this process: HTTP requests (by route template, method and status, and their
latency) and STOW-RS outcomes.

Not yet measured: C-STORE statuses other than success and association counts, which only the
receiver processes see (refused instances leave no row).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Job, JobEvent

__all__ = ["IndexCollector", "Metrics"]

log = logging.getLogger(__name__)

JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
WAITING = ("pending", "queued", "retry")


def _seconds(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


class IndexCollector(Collector):
    """Node-wide gauges and histograms, read from the index at each scrape."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except SQLAlchemyError as exc:  # a scrape must still answer: the up metric says why
            log.error("metrics: index unreadable: %s", exc)
            yield GaugeMetricFamily("dicom_node_index_up", "1 when the index could be read", value=0)
            return
        yield GaugeMetricFamily("dicom_node_index_up", "1 when the index could be read", value=1)

    def _collect(self) -> Iterator[Metric]:
        dialect = self.index.engine.dialect.name
        with self.index.sessions() as session:
            stored = session.execute(
                select(Instance.made_by_node, func.count(Instance.id), func.coalesce(func.sum(Instance.size), 0)).group_by(
                    Instance.made_by_node
                )
            ).all()
            states = session.execute(select(Job.queue, Job.state, func.count(Job.id)).group_by(Job.queue, Job.state)).all()
            durations = self._job_durations(session)
            to_result = self._complete_to_sent(session, dialect)
        instances = GaugeMetricFamily("dicom_node_instances", "instances in the store", labels=["origin"])
        size = GaugeMetricFamily("dicom_node_instance_bytes", "bytes of the instances in the store", labels=["origin"])
        for made, count, total in stored:
            origin = "result" if made else "received"
            instances.add_metric([origin], count)
            size.add_metric([origin], total)
        yield instances
        yield size
        depth = GaugeMetricFamily("dicom_node_queue_depth", "jobs waiting (pending, queued, retry) per queue", labels=["queue"])
        jobs = GaugeMetricFamily("dicom_node_jobs", "jobs per queue and state", labels=["queue", "state"])
        dead = GaugeMetricFamily("dicom_node_dead_letters", "jobs out of attempts, waiting for a person", labels=["queue"])
        waiting: dict[str, int] = {}
        dead_by_queue: dict[str, int] = {}
        for queue, state, count in states:
            jobs.add_metric([queue, state], count)
            if state in WAITING:
                waiting[queue] = waiting.get(queue, 0) + count
            if state == "dead":
                dead_by_queue[queue] = dead_by_queue.get(queue, 0) + count
        for queue, count in waiting.items():
            depth.add_metric([queue], count)
        for queue, count in dead_by_queue.items():
            dead.add_metric([queue], count)
        yield depth
        yield jobs
        yield dead
        yield durations
        yield to_result

    @staticmethod
    def _histogram(name: str, doc: str, labels: list[str], rows: Sequence[Sequence[Any]]) -> HistogramMetricFamily:
        """``rows``: label values, then the count under each of JOB_BUCKETS, the total count and the sum."""
        family = HistogramMetricFamily(name, doc, labels=labels)
        n = len(labels)
        for row in rows:
            under = [int(c or 0) for c in row[n : n + len(JOB_BUCKETS)]]
            total, seconds = int(row[n + len(JOB_BUCKETS)] or 0), float(row[n + len(JOB_BUCKETS) + 1] or 0)
            buckets = [(str(b), c) for b, c in zip(JOB_BUCKETS, under)] + [("+Inf", total)]
            family.add_metric([str(v or "") for v in row[:n]], buckets, seconds)
        return family

    @staticmethod
    def _bucket_columns(duration: Any) -> list[ColumnElement[Any]]:
        return [
            *(func.sum(case((duration <= b, 1), else_=0)) for b in JOB_BUCKETS),
            func.count(),
            func.coalesce(func.sum(duration), 0.0),
        ]

    def _job_durations(self, session: Session) -> HistogramMetricFamily:
        """Run time of each finished attempt (its JobEvent's duration), by job kind and pipeline."""
        duration = JobEvent.duration_s
        rows = session.execute(
            select(Job.kind, Job.pipeline, *self._bucket_columns(duration))
            .join(Job, JobEvent.job_id == Job.id)
            .where(duration.is_not(None))
            .group_by(Job.kind, Job.pipeline)
        ).all()
        return self._histogram(
            "dicom_node_job_duration_seconds", "run time of finished job attempts, by stage (job kind) and pipeline",
            ["stage", "pipeline"], rows,
        )  # fmt: skip

    def _complete_to_sent(self, session: Session, dialect: str) -> HistogramMetricFamily:
        """From a study's first completion to each result sent for it (succeeded send jobs)."""
        complete = aliased(JobEvent)
        first = (
            select(func.min(complete.at))
            .where(complete.study_uid == Job.study_uid, complete.event == "complete")
            .correlate(Job)
            .scalar_subquery()
        )
        seconds = _seconds(Job.finished_at, first, dialect)
        rows = session.execute(
            select(*self._bucket_columns(seconds)).where(Job.kind == "send", Job.state == "succeeded", first.is_not(None))
        ).all()
        return self._histogram(
            "dicom_node_study_complete_to_result_sent_seconds",
            "time from a study's completion to a result sent for it", [], rows,
        )  # fmt: skip


class Metrics:
    """One registry per app (several nodes in one test process do not share counters)."""

    def __init__(self, index: Index) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(IndexCollector(index))
        self.requests = Counter(
            "dicom_node_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "dicom_node_http_request_seconds", "time to the response's headers", ["method", "route"], registry=self.registry
        )
        self.stow = Counter(
            "dicom_node_stow_instances", "STOW-RS instances by outcome", ["outcome"], registry=self.registry
        )
