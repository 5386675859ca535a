"""Studies with what the node made of them: their series (the node's own SEG/SR marked as
results), their jobs and their timeline (the ``job_event`` rows: received, complete, matched,
queued, started, finished…)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from dicom_node.service import NotFound
from dicom_node.service.jobs import job_dict
from dicom_node.store.index import Index, StudySummary
from dicom_node.store.models import Instance, Job, JobEvent, Series, Study

__all__ = ["SeriesView", "StudyView", "event_dict", "studies", "study", "timeline"]


@dataclass(frozen=True)
class SeriesView:
    series_uid: str
    modality: str
    number: int | None
    description: str
    instances: int
    result: bool  # made by the node (a pipeline's SEG/SR), not received


@dataclass
class StudyView:
    """A study as the API and the dashboard show it."""

    summary: StudySummary
    series: list[SeriesView] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def results(self) -> list[SeriesView]:
        return [s for s in self.series if s.result]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self.summary)
        out["completed_at"] = self.summary.completed_at.isoformat() if self.summary.completed_at else None
        out["series"] = [asdict(s) for s in self.series]
        out["results"] = [asdict(s) for s in self.results]
        out["jobs"] = self.jobs
        return out


def studies(index: Index, limit: int = 100, with_details: bool = True) -> list[StudyView]:
    """The most recently received studies; with their series and jobs unless ``with_details``
    is False (the CLI's table needs only the summary)."""
    views = [StudyView(s) for s in index.studies(limit)]
    if not with_details or not views:
        return views
    by_uid = {v.summary.study_uid: v for v in views}
    for uid, series in _series(index, list(by_uid)).items():
        by_uid[uid].series = series
    with index.sessions() as session:
        for job in session.scalars(select(Job).where(Job.study_uid.in_(list(by_uid))).order_by(Job.id)):
            by_uid[job.study_uid or ""].jobs.append(job_dict(job))
    return views


def study(index: Index, study_uid: str) -> StudyView:
    """One study with its series and jobs; NotFound when the index has none by that UID."""
    view = StudyView(_summary(index, study_uid), _series(index, [study_uid]).get(study_uid, []))
    with index.sessions() as session:
        view.jobs = [job_dict(j) for j in session.scalars(select(Job).where(Job.study_uid == study_uid).order_by(Job.id))]
    return view


def _summary(index: Index, study_uid: str) -> StudySummary:
    with index.sessions() as session:
        row = session.scalar(select(Study).where(Study.study_uid == study_uid))
        if row is None:
            raise NotFound(f"no study {study_uid} in the index")
        n_series, n_instances = session.execute(
            select(func.count(func.distinct(Series.id)), func.count(Instance.id))
            .select_from(Series)
            .join(Instance, Instance.series_pk == Series.id, isouter=True)
            .where(Series.study_pk == row.id)
        ).one()
        return StudySummary(
            study_uid=row.study_uid, patient_id=row.patient.patient_id, patient_name=row.patient.patient_name,
            study_date=row.study_date, description=row.description, modalities=row.modalities,
            series=n_series, instances=n_instances, completed_at=row.completed_at,
        )  # fmt: skip


def _series(index: Index, study_uids: list[str]) -> dict[str, list[SeriesView]]:
    with index.sessions() as session:
        rows = session.execute(
            select(
                Study.study_uid, Series.series_uid, Series.modality, Series.series_number, Series.description,
                func.count(Instance.id), func.max(case((Instance.made_by_node, 1), else_=0)),  # max(boolean) is not PostgreSQL
            )
            .join(Series, Series.study_pk == Study.id)
            .join(Instance, Instance.series_pk == Series.id, isouter=True)
            .where(Study.study_uid.in_(study_uids))
            .group_by(Study.study_uid, Series.id)
            .order_by(Series.series_number, Series.id)
        ).all()
    out: dict[str, list[SeriesView]] = {}
    for study_uid, uid, modality, number, description, count, made in rows:
        out.setdefault(study_uid, []).append(SeriesView(uid, modality, number, description, count, bool(made)))
    return out


def timeline(index: Index, study_uid: str) -> list[JobEvent]:
    """The study's events, oldest first (empty for a study the index does not know)."""
    with index.sessions() as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.study_uid == study_uid).order_by(JobEvent.id)))


def event_dict(event: JobEvent) -> dict[str, Any]:
    at: dt.datetime = event.at
    return {"at": at.isoformat(), "event": event.event, "job_id": event.job_id, "detail": event.detail, "worker": event.worker, "duration_s": event.duration_s}
