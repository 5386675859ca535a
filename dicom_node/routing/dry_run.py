"""``dicom-node rules test``: which rules match, and what would run, without running it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from dicom_node.config import Settings
from dicom_node.routing.provenance import identifies_node, recorded_as_node_made
from dicom_node.routing.router import RoutePlan, plan_jobs
from dicom_node.routing.rules import UnreadableSeries, read_series_attributes
from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Series, Study

__all__ = ["DryRun", "dry_run", "explain"]


@dataclass
class _Found:
    series: dict[str, dict[str, object]] = field(default_factory=dict)
    not_routed: dict[str, str] = field(default_factory=dict)


def _attrs_from_files(target: Path, calling_ae: str) -> _Found:
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    found = _Found()
    for path in files:
        try:
            attrs, header = read_series_attributes(path, calling_ae)
        except UnreadableSeries:
            continue  # not DICOM, or not readable: a folder may hold other files
        uid = str(attrs.get("SeriesInstanceUID", path))
        if identifies_node(header):
            found.not_routed.setdefault(uid, "made by the node")
        elif uid not in found.not_routed:
            found.series.setdefault(uid, attrs)
    return found


def _attrs_from_index(index: Index, study_uid: str) -> _Found:
    found = _Found()
    with index.sessions() as session:
        rows = session.execute(
            select(Series.series_uid, Series.calling_ae, Series.id).join(Study).where(Study.study_uid == study_uid).order_by(Series.id)
        ).all()
        for series_uid, calling_ae, pk in rows:
            path = session.scalar(select(Instance.path).where(Instance.series_pk == pk).order_by(Instance.instance_number, Instance.id).limit(1))
            if not path:
                continue
            if recorded_as_node_made(session, pk):
                found.not_routed[series_uid] = "made by the node"
                continue
            try:
                attrs, header = read_series_attributes(path, calling_ae)
            except UnreadableSeries as exc:
                found.not_routed[series_uid] = f"quarantined: {exc}"
                continue
            if identifies_node(header):
                found.not_routed[series_uid] = "made by the node"
            else:
                found.series[series_uid] = attrs
    return found


@dataclass(frozen=True)
class DryRun:
    """What routing would make of a study: each series' attributes (UID → attributes), the plan,
    and the series the router leaves out (UID → why: the node's own result, or unreadable)."""

    study_uid: str
    series: dict[str, dict[str, object]]
    plan: RoutePlan
    not_routed: dict[str, str] = field(default_factory=dict)


def dry_run(settings: Settings, target: str, calling_ae: str = "", index: Index | None = None) -> DryRun | None:
    """Plan ``target`` (DICOM files/folder, else a study UID in ``index`` — the settings' one
    when not given) as the router would, queueing nothing; None when there is nothing to plan."""
    path = Path(target)
    if path.exists():
        found = _attrs_from_files(path, calling_ae)
    else:
        found = _attrs_from_index(index or Index(settings.database_url or ""), target)
    if not found.series and not found.not_routed:
        return None
    study_uid = str(next(iter(found.series.values())).get("StudyInstanceUID", target)) if found.series else target
    plan = plan_jobs(settings, study_uid, found.series, queue_of=lambda name: "gpu")
    return DryRun(study_uid, found.series, plan, found.not_routed)


def explain(settings: Settings, target: str, calling_ae: str = "") -> Iterator[str]:
    run = dry_run(settings, target, calling_ae)
    if run is None:
        yield f"nothing to test: {target} is neither DICOM files nor a study in the index"
        return
    plan = run.plan
    for uid, attrs in run.series.items():
        names = plan.matches.get(uid) or []
        state = "discarded" if uid in plan.discarded else (", ".join(names) or "no rule")
        yield f"series {uid} ({attrs.get('Modality', '?')}, {attrs.get('SeriesDescription', '')}): {state}"
    for uid, why in run.not_routed.items():
        yield f"series {uid}: not routed, {why}"
    for job in plan.jobs:
        what = job.pipeline or job.destination
        yield f"  would queue {job.kind} {what} (rule {job.rule}, priority {job.priority}, queue {job.queue})"
    if not plan.jobs:
        yield "  nothing would run"
