"""The index schema (SQLAlchemy 2): the DICOM hierarchy for Q/R and routing, plus the outbox of
completion events and jobs so that nothing handed to the broker exists only in the broker.

Columns hold what PS3.4 Annex C query keys and the routing rules need; everything else stays
in the files. Dates/times are DICOM strings (``YYYYMMDD``/``HHMMSS``) so range matching is a
string comparison the database can index.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Patient", "OtherPatientId", "Study", "Series", "Instance", "CompletionEvent", "Job", "JobEvent", "ProcessedInput", "ApiToken", "Order", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="", index=True)
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class OtherPatientId(Base):
    """An item of a patient's Other Patient IDs Sequence (PS3.3 C.7.1.1), as any of their
    instances gave it, for C-FIND (PS3.4 C.6.1.1.2); migration 0002."""

    __tablename__ = "other_patient_id"
    __table_args__ = (UniqueConstraint("patient_pk", "patient_id", "issuer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    id_type: Mapped[str] = mapped_column(String(16), default="")  # Type of Patient ID (0010,0022)


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_id: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    referring_physician: Mapped[str] = mapped_column(String(324), default="")
    modalities: Mapped[str] = mapped_column(String(128), default="")  # backslash-separated, sorted
    last_received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str] = mapped_column(String(64), default="")
    body_part: Mapped[str] = mapped_column(String(16), default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    last_received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    routed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax: Mapped[str] = mapped_column(String(64), default="")
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer, default=0)
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    made_by_node: Mapped[bool] = mapped_column(Boolean, default=False)

    series: Mapped[Series] = relationship(back_populates="instances")


class CompletionEvent(Base):
    """Outbox row: a study became complete; the router consumes it (``routed_at``)."""

    __tablename__ = "completion_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    completed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    routed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True, index=True)


class Job(Base):
    """Outbox row for one unit of queued work; persisted before it is handed to the broker."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_state_priority", "state", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # pipeline | forward | send | sidecar | fetch_priors
    queue: Mapped[str] = mapped_column(String(16))
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    series_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pipeline: Mapped[str | None] = mapped_column(String(64), nullable=True)
    destination: Mapped[str | None] = mapped_column(String(64), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=5)  # 0 = stat … 9 = lowest
    # pending → queued → running → succeeded | retry (→ queued …) | dead (dead letter, retryable by hand)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    queued_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)


class JobEvent(Base):
    """One line of a study's timeline: received, complete, matched, queued, started, finished…"""

    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"), index=True, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(nullable=True)


class ProcessedInput(Base):
    """What an imaging pipeline job was given: a series' content (a digest of its SOP Instance
    UIDs) for one pipeline version. The router makes no new job for a key whose job is in hand
    or succeeded (:mod:`dicom_node.routing.processed`), so a study sent again runs nothing twice."""

    __tablename__ = "processed_input"
    __table_args__ = (Index("ix_processed_input_key", "series_uid", "pipeline", "version", "content_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    content_digest: Mapped[str] = mapped_column(String(64))  # SHA-256 hex
    instances: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token of the web face (:mod:`dicom_node.web.auth`): only its SHA-256 is kept,
    so the index never holds a usable token; a revoked one stays, to say it was revoked."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | admin
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Order(Base):
    """An imaging order from the RIS (HL7 ORM^O01 / OMI^O23, :mod:`dicom_node.orders`), keyed by
    accession number: what the routing rules see as ``order.*`` and what makes a study STAT."""

    __tablename__ = "imaging_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    accession_number: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    study_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    placer_order: Mapped[str] = mapped_column(String(64), default="")
    procedure_code: Mapped[str] = mapped_column(String(64), default="")
    procedure: Mapped[str] = mapped_column(String(200), default="")
    priority: Mapped[str] = mapped_column(String(16), default="routine")  # stat | asap | routine
    order_control: Mapped[str] = mapped_column(String(2), default="NW")  # ORC-1: NW new, XO change, CA cancel…
    message_type: Mapped[str] = mapped_column(String(16), default="")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
