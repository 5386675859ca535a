"""``dicom-node rules test``: which rules match, and what would run, without running it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from dicom_node.config import Settings
from dicom_node.routing.router import plan_jobs
from dicom_node.routing.rules import series_attributes
from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Series, Study

__all__ = ["explain"]


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


def _attrs_from_index(settings: Settings, study_uid: str) -> dict[str, dict[str, object]]:
    index = Index(settings.database_url or "")
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


def explain(settings: Settings, target: str, calling_ae: str = "") -> Iterator[str]:
    path = Path(target)
    series = _attrs_from_files(path, calling_ae) if path.exists() else _attrs_from_index(settings, target)
    if not series:
        yield f"nothing to test: {target} is neither DICOM files nor a study in the index"
        return
    study_uid = str(next(iter(series.values())).get("StudyInstanceUID", target))
    plan = plan_jobs(settings, study_uid, series, queue_of=lambda name: "gpu")
    for uid, attrs in series.items():
        names = plan.matches.get(uid) or []
        state = "discarded" if uid in plan.discarded else (", ".join(names) or "no rule")
        yield f"series {uid} ({attrs.get('Modality', '?')}, {attrs.get('SeriesDescription', '')}): {state}"
    for job in plan.jobs:
        what = job.pipeline or job.destination
        yield f"  would queue {job.kind} {what} (rule {job.rule}, priority {job.priority}, queue {job.queue})"
    if not plan.jobs:
        yield "  nothing would run"
