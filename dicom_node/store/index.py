"""The SQL index: engine set-up (SQLite by default, PostgreSQL by URL) and the writes and reads
the receive path, reconciliation and completion detection need.

SQLite runs in WAL mode with a busy timeout so the SCP, the router and worker processes can
share one file; every write is a short transaction. The schema is Alembic's
(:mod:`dicom_node.store.schema`): opening the index upgrades it, under a database lock.

On PostgreSQL several replicas share the index; a session that stays idle inside a
transaction longer than ``takeover_s`` is ended by the server, so the row locks of a replica
that died (host lost, process frozen) pass to the others within that bound.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, make_url, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.header import InstanceRecord
from dicom_node.store.schema import migrate
from dicom_node.store.models import (
    CompletionEvent, Instance, JobEvent, OtherPatientId, Patient, Series, Study, utcnow,
)  # fmt: skip

__all__ = ["Index", "StudySummary", "make_engine"]

log = logging.getLogger(__name__)


TAKEOVER_S = 30.0


def make_engine(url: str, takeover_s: float = TAKEOVER_S) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys, PostgreSQL a
    bound of ``takeover_s`` on how long a dead client's transaction may hold its locks."""
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
    if make_url(url).get_backend_name() == "postgresql":
        bound_ms = int(takeover_s * 1000)
        # a replica killed on a lost host never closes its socket: the server ends its open
        # transaction after this (and notices the dead socket by keep-alive), releasing its locks
        options = f"-c idle_in_transaction_session_timeout={bound_ms} -c tcp_keepalives_idle={max(1, int(takeover_s) // 3)}"
        return create_engine(url, pool_pre_ping=True, connect_args={"options": options})
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

    def __init__(self, url: str, takeover_s: float = TAKEOVER_S) -> None:
        self.engine = make_engine(url, takeover_s)
        migrate(self.engine)
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
                    _BatchWriter(session).write(records)
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
        log.info("study %s complete (%s)", study.study_uid, "forced" if forced else "quiet period")

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


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], key: str, sticky: tuple[str, ...] = ()) -> dict[str, int]:
    """INSERT … ON CONFLICT (key) DO UPDATE for ``rows``; returns key → primary key. A ``sticky``
    (boolean) column that is true stays true.

    One statement executed with the rows as parameter sets (SQLAlchemy's "insertmanyvalues"):
    its SQL is the same whatever the batch size, so it is compiled once per column set, where a
    multi-row ``values(rows)`` was compiled anew for every batch size. Each returned row names
    its key, so the rows' order does not matter: ``sort_by_parameter_order`` would make SQLite
    send one INSERT per row, and PostgreSQL sort by primary key, which an upsert of existing
    rows does not follow anyway.
    """
    if not rows:
        return {}
    insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(table)
    values = {c: table.c[c] | insert.excluded[c] if c in sticky else insert.excluded[c] for c in rows[0] if c != key}
    stmt = insert.on_conflict_do_update(index_elements=[key], set_=values).returning(table.c[key], table.c.id)
    return {k: pk for k, pk in conn.execute(stmt, rows)}


def _last(records: Sequence[InstanceRecord], key: Callable[[InstanceRecord], str]) -> dict[str, InstanceRecord]:
    """The latest record per key (a batch may hold a re-sent instance twice)."""
    return {key(r): r for r in records}


class _BatchWriter:
    """Set-based upsert of a batch of records: a few statements per level, not per record."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.conn = session.connection()

    def write(self, records: Sequence[InstanceRecord]) -> None:
        patients = _last(records, lambda r: r.patient_id)
        patient_pk = _upsert(self.conn, Patient.__table__, [
            {"patient_id": pid, "patient_name": r.patient_name, "birth_date": r.birth_date, "sex": r.sex}
            for pid, r in patients.items()
        ], "patient_id")  # fmt: skip
        self._other_patient_ids(records, patient_pk)
        study_pk = self._studies(records, patient_pk)
        series_pk = self._series(records, study_pk)
        rows = [
            {
                "sop_instance_uid": uid, "series_pk": series_pk[r.series_uid], "sop_class_uid": r.sop_class_uid,
                "instance_number": r.instance_number, "transfer_syntax": r.transfer_syntax, "path": r.path,
                "size": r.size, "calling_ae": r.calling_ae, "received_at": r.received_at, "made_by_node": r.made_by_node,
            }  # fmt: skip
            for uid, r in _last(records, lambda r: r.sop_instance_uid).items()
        ]
        # who made an instance does not change when it comes back: a PACS echoing the node's SEG/SR
        # must leave it the node's own (dicom_node.routing.provenance)
        _upsert(self.conn, Instance.__table__, rows, "sop_instance_uid", sticky=("made_by_node",))

    def _other_patient_ids(self, records: Sequence[InstanceRecord], patient_pk: dict[str, int]) -> None:
        """Every other ID an instance names for its patient, kept once (the union over instances),
        in the order they first came."""
        keys = ("patient_pk", "patient_id", "issuer", "id_type")
        found = dict.fromkeys((patient_pk[r.patient_id], *ids) for r in records for ids in r.other_patient_ids)
        if found:
            insert = (sqlite_insert if self.conn.dialect.name == "sqlite" else pg_insert)(OtherPatientId.__table__)
            rows = [dict(zip(keys, row)) for row in found]
            self.conn.execute(insert.on_conflict_do_nothing(index_elements=list(keys[:3])), rows)

    def _studies(self, records: Sequence[InstanceRecord], patient_pk: dict[str, int]) -> dict[str, int]:
        by_study: dict[str, list[InstanceRecord]] = {}
        for r in records:
            by_study.setdefault(r.study_uid, []).append(r)
        existing = {
            row.study_uid: row
            for row in self.conn.execute(
                select(Study.study_uid, Study.modalities, Study.last_received_at).where(Study.study_uid.in_(list(by_study)))
            )
        }
        rows = []
        for uid, recs in by_study.items():
            last, old = recs[-1], existing.get(uid)
            received = [r.received_at for r in recs if not r.made_by_node]
            modalities = set(filter(None, (old.modalities if old else "").split("\\"))) | {r.modality for r in recs if r.modality}
            row = {
                "study_uid": uid, "patient_pk": patient_pk[last.patient_id], "study_date": last.study_date,
                "study_time": last.study_time, "accession_number": last.accession_number, "study_id": last.study_id,
                "description": last.study_description, "referring_physician": last.referring_physician,
                "modalities": "\\".join(sorted(modalities)),
                # our own results must not re-open the study they report on
                "last_received_at": max([*received, *([old.last_received_at] if old else [])], default=last.received_at),
            }  # fmt: skip
            if old is None:
                row["completed_at"] = None if received else last.received_at
                event = "received" if received else "result stored"
                self.session.add(JobEvent(study_uid=uid, event=event, detail=f"first instance from {recs[0].calling_ae or 'local'}"))
            rows.append(row)
        return _upsert_keep(self.conn, Study.__table__, rows, "study_uid", keep=("completed_at",))

    def _series(self, records: Sequence[InstanceRecord], study_pk: dict[str, int]) -> dict[str, int]:
        by_series: dict[str, list[InstanceRecord]] = {}
        for r in records:
            by_series.setdefault(r.series_uid, []).append(r)
        existing = {
            row.series_uid: row
            for row in self.conn.execute(
                select(Series.series_uid, Series.last_received_at, Series.calling_ae).where(Series.series_uid.in_(list(by_series)))
            )
        }
        rows = []
        for uid, recs in by_series.items():
            last, old = recs[-1], existing.get(uid)
            received = [r.received_at for r in recs if not r.made_by_node]
            calling = next((r.calling_ae for r in reversed(recs) if r.calling_ae), old.calling_ae if old else "")
            row = {
                "series_uid": uid, "study_pk": study_pk[last.study_uid], "modality": last.modality,
                "series_number": last.series_number, "description": last.series_description, "body_part": last.body_part,
                "manufacturer": last.manufacturer, "calling_ae": calling,
                "last_received_at": max([*received, *([old.last_received_at] if old else [])], default=last.received_at),
            }  # fmt: skip
            if old is None:  # a result series is born complete and never routed
                row["completed_at"] = row["routed_at"] = None if received else last.received_at
            rows.append(row)
        return _upsert_keep(self.conn, Series.__table__, rows, "series_uid", keep=("completed_at", "routed_at"))


def _upsert_keep(conn: Connection, table: Table, rows: list[dict[str, Any]], key: str, keep: tuple[str, ...]) -> dict[str, int]:
    """Upsert where ``keep`` columns are set only on insert (new rows carry them; old rows keep theirs)."""
    new = [r for r in rows if keep[0] in r]
    old = [r for r in rows if keep[0] not in r]
    return {**_upsert(conn, table, new, key), **_upsert(conn, table, old, key)}
