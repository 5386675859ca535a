"""``dicom-node rules test``: which rules match, and what would run, without running it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from dicom_node.config import Settings
from dicom_node.routing.router import RoutePlan, plan_jobs
from dicom_node.routing.rules import series_attributes
from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Series, Study

__all__ = ["DryRun", "dry_run", "explain"]


def _attrs_from_files(target: Path, calling_ae: str) -> dict[str, dict[str, object]]:
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    by_series: dict[str, dict[str, object]] = {}
    for path in files:
        try:
            header = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError):
            continue
        uid = str(header.get("SeriesInstanceUID", path))
        by_series.setdefault(uid, series_attributes(header, calling_ae))
    return by_series


def _attrs_from_index(index: Index, study_uid: str) -> dict[str, dict[str, object]]:
    by_series: dict[str, dict[str, object]] = {}
    with index.sessions() as session:
        rows = session.execute(
            select(Series.series_uid, Series.calling_ae, Series.id).join(Study).where(Study.study_uid == study_uid)
        ).all()
        for series_uid, calling_ae, pk in rows:
            path = session.scalar(select(Instance.path).where(Instance.series_pk == pk).limit(1))
            if path:
                by_series[series_uid] = series_attributes(dcmread(path, stop_before_pixels=True), calling_ae)
    return by_series


@dataclass(frozen=True)
class DryRun:
    """What routing would make of a study: each series' attributes (UID → attributes) and the plan."""

    study_uid: str
    series: dict[str, dict[str, object]]
    plan: RoutePlan


def dry_run(settings: Settings, target: str, calling_ae: str = "", index: Index | None = None) -> DryRun | None:
    """Plan ``target`` (DICOM files/folder, else a study UID in ``index`` — the settings' one
    when not given) as the router would, queueing nothing; None when there is nothing to plan."""
    path = Path(target)
    if path.exists():
        series = _attrs_from_files(path, calling_ae)
    else:
        series = _attrs_from_index(index or Index(settings.database_url or ""), target)
    if not series:
        return None
    study_uid = str(next(iter(series.values())).get("StudyInstanceUID", target))
    return DryRun(study_uid, series, plan_jobs(settings, study_uid, series, queue_of=lambda name: "gpu"))


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
    for job in plan.jobs:
        what = job.pipeline or job.destination
        yield f"  would queue {job.kind} {what} (rule {job.rule}, priority {job.priority}, queue {job.queue})"
    if not plan.jobs:
        yield "  nothing would run"
