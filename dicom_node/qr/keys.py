"""The query keys the index can match and return (PS3.4 C.6.1.1 / C.6.2.1 tables), each tied
to the hierarchy level whose table holds it, plus the keys computed by SQL aggregates.

A key belongs to the level of the row that stores it; in the Study Root model the patient
keys are study-level attributes, which falls out naturally: a key is usable whenever its
level is at or above the query level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.orm import InstrumentedAttribute, aliased

from dicom_node.qr.model import Level
from dicom_node.store.models import Instance, Patient, Series, Study

__all__ = ["Match", "Key", "KEYS", "Computed", "COMPUTED", "TABLE_PK"]


class Match(Enum):
    """How a key's value is matched (PS3.4 C.2.2.2), by VR family."""

    PN = "pn"  # wildcard allowed, case-insensitive (our choice, C.2.2.2.1)
    TEXT = "text"  # CS/SH/LO: wildcard allowed, case-sensitive
    UID = "uid"  # single value or list of UIDs, no wildcard
    DATE = "date"  # DA: single value or range
    TIME = "time"  # TM: single value or range
    INT = "int"  # IS: single value


@dataclass(frozen=True)
class Key:
    keyword: str
    level: Level
    column: InstrumentedAttribute[str] | InstrumentedAttribute[int | None]
    match: Match


KEYS: dict[str, Key] = {
    k.keyword: k
    for k in (
        Key("PatientName", Level.PATIENT, Patient.patient_name, Match.PN),
        Key("PatientID", Level.PATIENT, Patient.patient_id, Match.TEXT),
        Key("PatientBirthDate", Level.PATIENT, Patient.birth_date, Match.DATE),
        Key("PatientSex", Level.PATIENT, Patient.sex, Match.TEXT),
        Key("StudyInstanceUID", Level.STUDY, Study.study_uid, Match.UID),
        Key("StudyDate", Level.STUDY, Study.study_date, Match.DATE),
        Key("StudyTime", Level.STUDY, Study.study_time, Match.TIME),
        Key("AccessionNumber", Level.STUDY, Study.accession_number, Match.TEXT),
        Key("StudyID", Level.STUDY, Study.study_id, Match.TEXT),
        Key("StudyDescription", Level.STUDY, Study.description, Match.TEXT),
        Key("ReferringPhysicianName", Level.STUDY, Study.referring_physician, Match.PN),
        Key("SeriesInstanceUID", Level.SERIES, Series.series_uid, Match.UID),
        Key("Modality", Level.SERIES, Series.modality, Match.TEXT),
        Key("SeriesNumber", Level.SERIES, Series.series_number, Match.INT),
        Key("SeriesDescription", Level.SERIES, Series.description, Match.TEXT),
        Key("BodyPartExamined", Level.SERIES, Series.body_part, Match.TEXT),
        Key("Manufacturer", Level.SERIES, Series.manufacturer, Match.TEXT),
        Key("SOPInstanceUID", Level.IMAGE, Instance.sop_instance_uid, Match.UID),
        Key("SOPClassUID", Level.IMAGE, Instance.sop_class_uid, Match.UID),
        Key("InstanceNumber", Level.IMAGE, Instance.instance_number, Match.INT),
        Key("AvailableTransferSyntaxUID", Level.IMAGE, Instance.transfer_syntax, Match.UID),
    )
}

TABLE_PK: dict[Level, InstrumentedAttribute[int]] = {
    Level.PATIENT: Patient.id,
    Level.STUDY: Study.id,
    Level.SERIES: Series.id,
    Level.IMAGE: Instance.id,
}


@dataclass(frozen=True)
class Computed:
    """A return key the index does not store but counts or aggregates per returned row.

    ``expression`` is a scalar subquery over aliased tables, correlated only with the
    returned row's own table, so it is right at any query level at or below ``level``.
    """

    keyword: str
    level: Level
    expression: Callable[[], ScalarSelect[object]]


def _patient_count(what: str) -> ScalarSelect[object]:
    st, se, inst = aliased(Study), aliased(Series), aliased(Instance)
    target = {"studies": st.id, "series": se.id, "instances": inst.id}[what]
    query = select(func.count(target)).select_from(st)
    if what != "studies":
        query = query.join(se, se.study_pk == st.id)
    if what == "instances":
        query = query.join(inst, inst.series_pk == se.id)
    return query.where(st.patient_pk == Patient.id).correlate(Patient).scalar_subquery()


def _study_count(what: str) -> ScalarSelect[object]:
    se, inst = aliased(Series), aliased(Instance)
    if what == "series":
        query = select(func.count(se.id))
    else:
        query = select(func.count(inst.id)).select_from(se).join(inst, inst.series_pk == se.id)
    return query.where(se.study_pk == Study.id).correlate(Study).scalar_subquery()


def _modalities() -> ScalarSelect[object]:
    # One value per series, de-duplicated and sorted in Python: distinct string aggregation
    # with a separator is not portable between SQLite and PostgreSQL.
    se = aliased(Series)
    return (
        select(func.aggregate_strings(se.modality, "\\"))
        .where(se.study_pk == Study.id)
        .correlate(Study)
        .scalar_subquery()
    )


def _series_instances() -> ScalarSelect[object]:
    inst = aliased(Instance)
    return select(func.count(inst.id)).where(inst.series_pk == Series.id).correlate(Series).scalar_subquery()


COMPUTED: dict[str, Computed] = {
    c.keyword: c
    for c in (
        Computed("NumberOfPatientRelatedStudies", Level.PATIENT, lambda: _patient_count("studies")),
        Computed("NumberOfPatientRelatedSeries", Level.PATIENT, lambda: _patient_count("series")),
        Computed("NumberOfPatientRelatedInstances", Level.PATIENT, lambda: _patient_count("instances")),
        Computed("NumberOfStudyRelatedSeries", Level.STUDY, lambda: _study_count("series")),
        Computed("NumberOfStudyRelatedInstances", Level.STUDY, lambda: _study_count("instances")),
        Computed("ModalitiesInStudy", Level.STUDY, _modalities),
        Computed("NumberOfSeriesRelatedInstances", Level.SERIES, _series_instances),
    )
}
