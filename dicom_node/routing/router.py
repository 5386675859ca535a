"""The router: turns completion events into jobs by the rules, in one transaction each.

For each unrouted completion event it reads the first instance header of every series that
changed since it was last routed, evaluates the rules, persists the resulting jobs (outbox)
and marks the event routed. Series made by the node itself (SEG/SR results) are never routed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.config import PipelineSettings, Settings
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.orders.record import order_attributes
from dicom_node.routing.rules import PRIORITY, Rule, series_attributes
from dicom_node.store.index import Index
from dicom_node.store.models import CompletionEvent, Instance, JobEvent, Series, Study, utcnow
from dicom_node.ticker import Ticker

__all__ = ["RoutePlan", "plan_series", "plan_jobs", "Router"]

log = logging.getLogger(__name__)


@dataclass
class RoutePlan:
    """What the rules say for one study: matched rules per series, and the jobs that follow."""

    matches: dict[str, list[str]] = field(default_factory=dict)  # series UID → rule names
    discarded: list[str] = field(default_factory=list)
    jobs: list[NewJob] = field(default_factory=list)


def plan_series(rules: list[Rule], attrs: dict[str, object]) -> tuple[list[Rule], bool]:
    """Rules matching one series, in order, and whether a discard rule stopped the evaluation."""
    matched: list[Rule] = []
    for rule in rules:
        if rule.match.matches(attrs):
            if rule.discard:
                return matched, True
            matched.append(rule)
    return matched, False


def plan_jobs(settings: Settings, study_uid: str, series_attrs: dict[str, dict[str, object]], queue_of: Callable[[str], str]) -> RoutePlan:
    """The jobs for ``series_attrs`` (series UID → attributes) of one study."""
    plan = RoutePlan()
    forwards: dict[str, tuple[int, str, list[str]]] = {}
    priors: dict[str, tuple[int, str, Rule]] = {}
    for series_uid, attrs in series_attrs.items():
        matched, discarded = plan_series(settings.rules, attrs)
        if discarded:
            plan.discarded.append(series_uid)
        plan.matches[series_uid] = [r.name for r in matched]
        for rule in matched:
            if rule.pipeline:
                returns = list(rule.forward)
                origin = settings.origin_destination(str(attrs.get("calling_ae", "")))
                if settings.return_results_to_origin and origin and origin not in returns:
                    returns.append(origin)
                # the rule's notify list, else the pipeline's; kept on the job for its results
                notify = rule.notify if rule.notify is not None else settings.pipelines.get(rule.pipeline, PipelineSettings()).notify
                plan.jobs.append(
                    NewJob(
                        kind="pipeline", queue=queue_of(rule.pipeline), study_uid=study_uid, series_uid=series_uid,
                        rule=rule.name, pipeline=rule.pipeline, priority=rule.priority_value,
                        params={"return_to": returns, **({"notify": list(notify)} if notify else {})},
                    )  # fmt: skip
                )
            for dest in rule.forward:
                prio, name, series = forwards.get(dest, (rule.priority_value, rule.name, []))
                forwards[dest] = (min(prio, rule.priority_value), name, [*series, series_uid])
            if rule.fetch_priors:
                priors.setdefault(rule.fetch_priors.source, (rule.priority_value, rule.name, rule))
    for dest, (prio, name, series) in forwards.items():
        plan.jobs.append(
            NewJob(kind="forward", queue="send", study_uid=study_uid, rule=name, destination=dest, priority=prio,
                   params={"series": sorted(set(series))})  # fmt: skip
        )
    for source, (prio, name, rule) in priors.items():
        assert rule.fetch_priors is not None
        plan.jobs.append(
            NewJob(kind="fetch_priors", queue="send", study_uid=study_uid, rule=name, destination=source,
                   priority=prio, params=rule.fetch_priors.model_dump())  # fmt: skip
        )
    return plan


def _default_queue(pipeline: str) -> str:
    from pipelines.registry import get

    return get(pipeline).queue


class Router(Ticker):
    """Consumes completion events (a thread in the node process). Its tick also catches events
    written by another process (``dicom-node complete``)."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        on_jobs: Callable[[], None] = lambda: None,
        queue_of: Callable[[str], str] = _default_queue,
    ) -> None:
        self.settings = settings
        self.index = index
        self.on_jobs = on_jobs
        self.queue_of = queue_of
        super().__init__("router")

    def tick(self) -> None:
        self.route_pending()

    def interval(self) -> float:
        return 0.5

    def route_pending(self) -> int:
        """Route every unrouted completion event; returns the number of jobs created."""
        with self.index.sessions() as session:
            event_ids = list(session.scalars(select(CompletionEvent.id).where(CompletionEvent.routed_at.is_(None)).order_by(CompletionEvent.id)))
        created = 0
        for event_id in event_ids:
            with self.index.sessions.begin() as session:
                created += self._route(session, event_id)
        if created:
            self.on_jobs()
        return created

    def _route(self, session: Session, event_id: int) -> int:
        event = session.get(CompletionEvent, event_id)
        if event is None or event.routed_at is not None:
            return 0
        study = session.scalar(select(Study).where(Study.study_uid == event.study_uid))
        attrs: dict[str, dict[str, object]] = {}
        now = utcnow()
        if study is not None:
            changed = session.scalars(
                select(Series)
                .where(Series.study_pk == study.id)
                .where((Series.routed_at.is_(None)) | (Series.routed_at < Series.last_received_at))
            ).all()
            for series in changed:
                first = session.scalar(
                    select(Instance.path).where(Instance.series_pk == series.id).order_by(Instance.instance_number, Instance.id).limit(1)
                )
                series.routed_at = now
                if first is None:
                    continue
                try:
                    header = dcmread(first, stop_before_pixels=True)
                except (OSError, InvalidDicomError) as exc:  # a file gone or damaged since it was stored
                    log.error("series %s not routed: cannot read %s: %s", series.series_uid, first, exc)
                    session.add(JobEvent(study_uid=event.study_uid, event="route error", detail=f"series {series.series_uid}: {exc}"))
                    continue
                attrs[series.series_uid] = series_attributes(header, series.calling_ae)
                attrs[series.series_uid].update(order_attributes(session, str(header.get("AccessionNumber", "")), event.study_uid))
        plan = plan_jobs(self.settings, event.study_uid, attrs, self.queue_of)
        if any(a.get("order.priority") == "stat" for a in attrs.values()):  # the RIS's STAT order goes first
            plan.jobs = [replace(job, priority=PRIORITY["stat"]) for job in plan.jobs]
        matched = sorted({name for names in plan.matches.values() for name in names})
        detail = f"rules: {', '.join(matched) or 'none'}; {len(plan.jobs)} job(s)"
        if plan.discarded:
            detail += f"; {len(plan.discarded)} series discarded"
        session.add(JobEvent(study_uid=event.study_uid, event="routed", detail=detail))
        add_jobs(session, plan.jobs, self.settings.queue.max_attempts)
        event.routed_at = now
        log.info("routed study %s: %s", event.study_uid, detail)
        return len(plan.jobs)
