"""The router: turns completion events into jobs by the rules, in one transaction each.

For each unrouted completion event it reads the first instance header of every series that
changed since it was last routed, evaluates the rules, persists the resulting jobs (outbox)
and marks the event routed. Series made by the node itself (SEG/SR results) are never routed,
whether stored by its workers or sent back by a PACS (:mod:`.provenance`), and an imaging
pipeline never runs twice on the same input (:mod:`.processed`).

One bad series or event never stops routing (issue 12 item 1): a series whose first instance
cannot be read is quarantined — left unrouted, with the reason on its study's timeline and a
WARNING — while the rest of its study is routed; an event whose planning fails (a rule naming a
pipeline that is not installed…) is consumed with the reason on the timeline, nothing of it
routed. Either way the study is routed again when it completes again: new instances arrive, or
``dicom-node complete STUDY``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dicom_node.config import PipelineSettings, Settings
from dicom_node.orders.record import order_attributes
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.routing import processed
from dicom_node.routing.provenance import identifies_node, recorded_as_node_made
from dicom_node.routing.rules import PRIORITY, Rule, UnreadableSeries, read_series_attributes
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


def _default_version(pipeline: str) -> str:
    from pipelines.registry import get

    return get(pipeline).version


def _again(study_uid: str) -> str:
    return f"routed again when the study completes again (new instances, or `dicom-node complete {study_uid}`)"


def _readable(exc: BaseException, limit: int = 500) -> str:
    """An exception's text for the timeline: a damaged file's bytes quoted in it are escaped
    (PostgreSQL refuses NUL in text) and a long one is cut."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(exc))
    return text if len(text) <= limit else f"{text[:limit]}…"


class Router(Ticker):
    """Consumes completion events (a thread in the node process). Its tick also catches events
    written by another process (``dicom-node complete``) or another replica's detector."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        on_jobs: Callable[[], None] = lambda: None,
        queue_of: Callable[[str], str] = _default_queue,
        version_of: Callable[[str], str] = _default_version,
    ) -> None:
        self.settings = settings
        self.index = index
        self.on_jobs = on_jobs
        self.queue_of = queue_of
        self.version_of = version_of
        super().__init__("router")

    def tick(self) -> None:
        self.route_pending()

    def interval(self) -> float:
        return 0.5

    def route_pending(self) -> int:
        """Route every unrouted completion event; returns the number of jobs created."""
        with self.index.sessions() as session:
            event_ids = list(session.scalars(select(CompletionEvent.id).where(CompletionEvent.routed_at.is_(None)).order_by(CompletionEvent.id)))
        created = sum(self._route_one(event_id) for event_id in event_ids)
        if created:
            self.on_jobs()
        return created

    def _route_one(self, event_id: int) -> int:
        """Route one event in a transaction of its own; a failure to plan it is recorded and
        consumes the event, so that the events after it are routed."""
        try:
            with self.index.sessions.begin() as session:
                return self._route(session, event_id)
        except OperationalError:
            raise  # the database is away or locked: this round ends, the next one tries again
        except Exception as exc:  # noqa: BLE001 - a bulkhead: whatever one event raises, the others are routed
            self._fail(event_id, exc)
            return 0

    def _fail(self, event_id: int, exc: Exception) -> None:
        with self.index.sessions.begin() as session:
            event = session.get(CompletionEvent, event_id)
            if event is None:
                return
            event.routed_at = utcnow()
            detail = f"{type(exc).__name__}: {_readable(exc)}; nothing of the study was routed; {_again(event.study_uid)}"
            session.add(JobEvent(study_uid=event.study_uid, event="route failed", detail=detail))
        # the exception's text stays on the timeline: it may quote a value of the study
        log.warning("study %s not routed: %s (see its timeline)", event.study_uid, type(exc).__name__, extra={"study_uid": event.study_uid})
        log.debug("routing study %s failed", event.study_uid, exc_info=exc)

    def _route(self, session: Session, event_id: int) -> int:
        # replicas sharing the index route side by side: the event's row lock makes one of them
        # route it; the others pass it by (SKIP LOCKED) or, after its commit, find it routed
        event = session.scalar(
            select(CompletionEvent)
            .where(CompletionEvent.id == event_id, CompletionEvent.routed_at.is_(None))
            .with_for_update(skip_locked=True)
        )
        if event is None:
            return 0
        # one study is routed by one replica at a time, even for two of its events
        study = session.scalar(select(Study).where(Study.study_uid == event.study_uid).with_for_update())
        now = utcnow()
        attrs = self._series_attributes(session, event.study_uid, study, now) if study is not None else {}
        plan = plan_jobs(self.settings, event.study_uid, attrs, self.queue_of)
        if any(a.get("order.priority") == "stat" for a in attrs.values()):  # the RIS's STAT order goes first
            plan.jobs = [replace(job, priority=PRIORITY["stat"]) for job in plan.jobs]
        admission = processed.admit(session, plan.jobs, self.version_of)
        for key, earlier in admission.skipped:
            detail = (f"{key.pipeline} {key.version} on series {key.series_uid}: its {key.instances} instances went to "
                      f"job {earlier.id} ({earlier.state}); `dicom-node jobs retry {earlier.id}` runs it again")  # fmt: skip
            session.add(JobEvent(study_uid=event.study_uid, event="already processed", detail=detail))
        matched = sorted({name for names in plan.matches.values() for name in names})
        detail = f"rules: {', '.join(matched) or 'none'}; {len(admission.jobs)} job(s)"
        if plan.discarded:
            detail += f"; {len(plan.discarded)} series discarded"
        if admission.skipped:
            detail += f"; {len(admission.skipped)} already processed"
        session.add(JobEvent(study_uid=event.study_uid, event="routed", detail=detail))
        processed.record(session, admission, add_jobs(session, admission.jobs, self.settings.queue.max_attempts))
        event.routed_at = now
        log.info("routed study %s: %s", event.study_uid, detail)
        return len(admission.jobs)

    def _series_attributes(self, session: Session, study_uid: str, study: Study, now: dt.datetime) -> dict[str, dict[str, object]]:
        """The rules' attributes of each series of ``study`` changed since it was routed, marking
        them routed; the node's own results are left out, unreadable series quarantined."""
        attrs: dict[str, dict[str, object]] = {}
        changed = session.scalars(
            select(Series)
            .where(Series.study_pk == study.id)
            .where((Series.routed_at.is_(None)) | (Series.routed_at < Series.last_received_at))
            .order_by(Series.id)
        ).all()
        for series in changed:
            first = session.scalar(
                select(Instance.path).where(Instance.series_pk == series.id).order_by(Instance.instance_number, Instance.id).limit(1)
            )
            if first is None:
                series.routed_at = now
                continue
            if recorded_as_node_made(session, series.id):  # known without reading the file
                self._own_result(session, study_uid, series, now)
                continue
            try:
                found, header = read_series_attributes(first, series.calling_ae)
            except UnreadableSeries as exc:
                self._quarantine(session, study_uid, series, exc)
                continue
            if identifies_node(header):
                self._own_result(session, study_uid, series, now)
                continue
            series.routed_at = now
            found.update(order_attributes(session, str(found.get("AccessionNumber", "")), study_uid))
            attrs[series.series_uid] = found
        return attrs

    def _own_result(self, session: Session, study_uid: str, series: Series, now: dt.datetime) -> None:
        series.routed_at = now
        detail = f"series {series.series_uid} ({series.modality}) was made by the node: not routed"
        session.add(JobEvent(study_uid=study_uid, event="own result", detail=detail))

    def _quarantine(self, session: Session, study_uid: str, series: Series, exc: UnreadableSeries) -> None:
        """Leave ``series`` unrouted, saying why: on the study's timeline in full, in the log
        without the exception's text (it may quote a value)."""
        detail = f"series {series.series_uid} not routed: {_readable(exc)}; {_again(study_uid)}"
        session.add(JobEvent(study_uid=study_uid, event="quarantined", detail=detail))
        log.warning(
            "study %s: series %s quarantined, not routed: %s", study_uid, series.series_uid, exc.summary,
            extra={"study_uid": study_uid, "series_uid": series.series_uid},
        )  # fmt: skip
