"""The SQL index: engine set-up (SQLite by default, PostgreSQL by URL) and the writes and reads
the receive path, reconciliation and completion detection need.

SQLite runs in WAL mode with a busy timeout so the SCP, the router and worker processes can
share one file; every write is a short transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, func, make_url, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.header import InstanceRecord
from dicom_node.store.models import Base, CompletionEvent, Instance, JobEvent, Patient, Series, Study, utcnow

__all__ = ["Index", "StudySummary", "make_engine"]

log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable with WAL at checkpoint; files are the truth
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True)
class StudySummary:
    """One row of ``dicom-node studies``."""

    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    description: str
    modalities: str
    series: int
    instances: int
    completed_at: dt.datetime | None


class Index:
    """Reads and writes of the index; one per process, thread-safe through short sessions."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- writes -------------------------------------------------------------------------------

    def add_instances(self, records: Sequence[InstanceRecord]) -> None:
        """Insert or update ``records`` in one transaction (a re-sent instance replaces its row).

        Concurrent writers (several receiver processes) may race to create the same patient,
        study or series; the loser retries the batch and finds the winner's row.
        """
        for attempt in range(5):
            try:
                with self.sessions.begin() as session:
                    _Upserter(session).add_all(records)
                return
            except IntegrityError:
                if attempt == 4:
                    raise
                log.debug("index race on batch of %d, retrying", len(records))

    def remove_instances(self, sop_uids: Iterable[str]) -> int:
        with self.sessions.begin() as session:
            rows = session.scalars(select(Instance).where(Instance.sop_instance_uid.in_(list(sop_uids)))).all()
            for row in rows:
                session.delete(row)
            return len(rows)

    def record_event(self, session: Session, event_name: str, study_uid: str | None, detail: str = "", **kw: object) -> None:
        session.add(JobEvent(study_uid=study_uid, event=event_name, detail=detail, **kw))

    # -- completion ---------------------------------------------------------------------------

    def complete_due_studies(self, quiet_period_s: float, now: dt.datetime | None = None) -> list[str]:
        """Mark studies quiet for ``quiet_period_s`` complete and emit their completion events.

        A study that received more instances after it was completed is complete again once
        quiet: ``completed_at < last_received_at`` re-arms it.
        """
        now = now or utcnow()
        cutoff = now - dt.timedelta(seconds=quiet_period_s)
        with self.sessions.begin() as session:
            due = session.scalars(
                select(Study)
                .where(Study.last_received_at <= cutoff)
                .where((Study.completed_at.is_(None)) | (Study.completed_at < Study.last_received_at))
                .with_for_update(skip_locked=True)
            ).all()
            for study in due:
                self._complete(session, study, now, forced=False)
            return [s.study_uid for s in due]

    def force_complete(self, study_uid: str) -> bool:
        """``dicom-node complete``: complete a study now, whatever its quiet period."""
        with self.sessions.begin() as session:
            study = session.scalar(select(Study).where(Study.study_uid == study_uid))
            if study is None:
                return False
            self._complete(session, study, utcnow(), forced=True)
            return True

    def _complete(self, session: Session, study: Study, now: dt.datetime, forced: bool) -> None:
        study.completed_at = now
        session.execute(
            update(Series)
            .where(Series.study_pk == study.id)
            .where((Series.completed_at.is_(None)) | (Series.completed_at < Series.last_received_at))
            .values(completed_at=now)
        )
        session.add(CompletionEvent(study_uid=study.study_uid, completed_at=now, forced=forced))
        self.record_event(session, "complete", study.study_uid, "forced" if forced else "quiet period")
        log.info("study complete", extra={"study_uid": study.study_uid, "forced": forced})

    # -- reads --------------------------------------------------------------------------------

    def studies(self, limit: int = 1000) -> list[StudySummary]:
        with self.sessions() as session:
            n_series = (
                select(func.count(Series.id)).where(Series.study_pk == Study.id).correlate(Study).scalar_subquery()
            )
            n_inst = (
                select(func.count(Instance.id))
                .join(Series, Instance.series_pk == Series.id)
                .where(Series.study_pk == Study.id)
                .correlate(Study)
                .scalar_subquery()
            )
            rows = session.execute(
                select(Study, Patient, n_series, n_inst)
                .join(Patient, Study.patient_pk == Patient.id)
                .order_by(Study.last_received_at.desc())
                .limit(limit)
            ).all()
            return [
                StudySummary(
                    study_uid=st.study_uid,
                    patient_id=pt.patient_id,
                    patient_name=pt.patient_name,
                    study_date=st.study_date,
                    description=st.description,
                    modalities=st.modalities,
                    series=ns,
                    instances=ni,
                    completed_at=st.completed_at,
                )
                for st, pt, ns, ni in rows
            ]

    def instance_paths(self, study_uid: str, series_uid: str | None = None) -> list[str]:
        """Paths of a study's (or one series') instances, in series then instance order."""
        with self.sessions() as session:
            query = (
                select(Instance.path)
                .join(Series, Instance.series_pk == Series.id)
                .join(Study, Series.study_pk == Study.id)
                .where(Study.study_uid == study_uid)
                .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
            )
            if series_uid is not None:
                query = query.where(Series.series_uid == series_uid)
            return list(session.scalars(query))

    def indexed_paths(self) -> dict[str, str]:
        """path → SOP Instance UID for every indexed instance (reconciliation)."""
        with self.sessions() as session:
            return {p: uid for p, uid in session.execute(select(Instance.path, Instance.sop_instance_uid))}


class _Upserter:
    """Get-or-create of the hierarchy within one session, caching rows for the batch."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.patients: dict[str, Patient] = {}
        self.studies: dict[str, Study] = {}
        self.series: dict[str, Series] = {}

    def add_all(self, records: Sequence[InstanceRecord]) -> None:
        for rec in records:
            self._add(rec)

    def _patient(self, rec: InstanceRecord) -> Patient:
        pt = self.patients.get(rec.patient_id)
        if pt is None:
            pt = self.session.scalar(select(Patient).where(Patient.patient_id == rec.patient_id))
            if pt is None:
                pt = Patient(patient_id=rec.patient_id)
                self.session.add(pt)
            self.patients[rec.patient_id] = pt
        pt.patient_name, pt.birth_date, pt.sex = rec.patient_name, rec.birth_date, rec.sex
        return pt

    def _study(self, rec: InstanceRecord) -> Study:
        st = self.studies.get(rec.study_uid)
        if st is None:
            st = self.session.scalar(select(Study).where(Study.study_uid == rec.study_uid))
            if st is None:
                st = Study(study_uid=rec.study_uid, patient=self._patient(rec), modalities="")
                self.session.add(st)
                event = "result stored" if rec.made_by_node else "received"
                self.session.add(JobEvent(study_uid=rec.study_uid, event=event, detail=f"first instance from {rec.calling_ae or 'local'}"))
            self.studies[rec.study_uid] = st
        st.patient = self._patient(rec)
        st.study_date, st.study_time = rec.study_date, rec.study_time
        st.accession_number, st.study_id = rec.accession_number, rec.study_id
        st.description, st.referring_physician = rec.study_description, rec.referring_physician
        if rec.modality and rec.modality not in st.modalities.split("\\"):
            st.modalities = "\\".join(sorted(filter(None, [*st.modalities.split("\\"), rec.modality])))
        if not rec.made_by_node:  # our own results must not re-open the study they report on
            st.last_received_at = max(st.last_received_at or rec.received_at, rec.received_at)
        elif st.last_received_at is None:
            st.last_received_at, st.completed_at = rec.received_at, rec.received_at
        return st

    def _series(self, rec: InstanceRecord) -> Series:
        se = self.series.get(rec.series_uid)
        if se is None:
            se = self.session.scalar(select(Series).where(Series.series_uid == rec.series_uid))
            if se is None:
                se = Series(series_uid=rec.series_uid, study=self._study(rec))
                if rec.made_by_node:  # a result series is born complete and never routed
                    se.completed_at = se.routed_at = rec.received_at
                self.session.add(se)
            self.series[rec.series_uid] = se
        se.study = self._study(rec)
        se.modality, se.series_number = rec.modality, rec.series_number
        se.description, se.body_part, se.manufacturer = rec.series_description, rec.body_part, rec.manufacturer
        if rec.calling_ae:
            se.calling_ae = rec.calling_ae
        se.last_received_at = max(se.last_received_at or rec.received_at, rec.received_at)
        return se

    def _add(self, rec: InstanceRecord) -> None:
        series = self._series(rec)
        inst = self.session.scalar(select(Instance).where(Instance.sop_instance_uid == rec.sop_instance_uid))
        if inst is None:
            inst = Instance(sop_instance_uid=rec.sop_instance_uid)
            self.session.add(inst)
        inst.series = series
        inst.sop_class_uid, inst.instance_number = rec.sop_class_uid, rec.instance_number
        inst.transfer_syntax, inst.path, inst.size = rec.transfer_syntax, rec.path, rec.size
        inst.calling_ae, inst.received_at, inst.made_by_node = rec.calling_ae, rec.received_at, rec.made_by_node
