"""Query keys with several values per match that no column of the match's row holds: SOP
Classes in Study (0008,0062; PS3.4 C.6.2.1.2), the distinct SOP classes of the study's
instances, and Other Patient IDs Sequence (0010,1002; C.6.1.1.2), the items the patient's
instances gave (``other_patient_id`` rows).

Each is read with one query per batch of matches, for the batch's studies or patients
(:meth:`Gathered.read`), rather than one aggregate per returned row; each can be matched as
well, by an EXISTS over the same rows: list of UID matching for SOP Classes in Study, sequence
matching (C.2.2.2.6) on the keys of the identifier's single item for Other Patient IDs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from dicom_node.qr.keys import Key, Match
from dicom_node.qr.matching import condition
from dicom_node.qr.model import Level, QRError, QRStatus
from dicom_node.store.models import Instance, OtherPatientId, Patient, Series, Study

__all__ = ["GATHERED", "Gathered", "OtherPatientIds", "SopClassesInStudy"]


class Gathered(Protocol):
    """One requested key of this kind, planned for one identifier."""

    level: Level  # the level whose row owns the values
    owner: InstrumentedAttribute[int]  # that row's primary key, selected with every match

    def condition(self) -> ColumnElement[bool] | None:
        """The match's condition for the requested values; None for universal matching."""

    def read(self, session: Session, owners: Sequence[int]) -> Mapping[int, object]:
        """The key's value for each of ``owners`` that has one: a list of values or items."""


def _texts(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (MultiValue, list, tuple)) else [str(value)]


class SopClassesInStudy:
    """SOP Classes in Study: a study matches when it has an instance of any of the given SOP
    classes (list of UID matching, C.2.2.2.2)."""

    level = Level.STUDY

    def __init__(self, elem: DataElement, dialect: str) -> None:
        self.owner = Study.id  # set here: as a class attribute, the column would bind to the instance
        self._instance, self._series = aliased(Instance), aliased(Series)
        key = Key("SOPClassesInStudy", Level.STUDY, self._instance.sop_class_uid, Match.UID)  # type: ignore[arg-type]
        self._term = condition(key, _texts(elem), dialect)

    def condition(self) -> ColumnElement[bool] | None:
        if self._term is None:
            return None
        inst, se = self._instance, self._series
        query = select(inst.id).join(se, inst.series_pk == se.id).where(se.study_pk == Study.id, self._term)
        return query.correlate(Study).exists()

    def read(self, session: Session, owners: Sequence[int]) -> Mapping[int, object]:
        query = (
            select(Series.study_pk, Instance.sop_class_uid)
            .join(Series, Instance.series_pk == Series.id)
            .where(Series.study_pk.in_(owners))
            .distinct()
        )
        found: dict[int, list[str]] = {}
        for study, sop_class in session.execute(query):
            if sop_class:
                found.setdefault(study, []).append(sop_class)
        return {study: sorted(classes) for study, classes in found.items()}


# Item keys the index holds, by keyword: column, and how a value matches (C.2.2.2).
_ITEM_KEYS: dict[str, tuple[InstrumentedAttribute[str], Match]] = {
    "PatientID": (OtherPatientId.patient_id, Match.TEXT),
    "IssuerOfPatientID": (OtherPatientId.issuer, Match.TEXT),
    "TypeOfPatientID": (OtherPatientId.id_type, Match.TEXT),
}


class OtherPatientIds:
    """Other Patient IDs Sequence: the identifier's single item names the item keys to return
    (all the index holds when there is no item) and, where they have values, the keys an item
    must match (sequence matching, C.2.2.2.6); a patient matches when one of their items does,
    and only the matching items come back."""

    level = Level.PATIENT

    def __init__(self, elem: DataElement, dialect: str) -> None:
        self.owner = Patient.id
        items = list(elem.value or [])
        if len(items) > 1:
            raise QRError(QRStatus.UNABLE_TO_PROCESS, "OtherPatientIDsSequence: one item expected", [int(elem.tag)])
        asked: Dataset | None = items[0] if items else None
        self._returned = [e.keyword for e in asked if e.keyword] if asked is not None else list(_ITEM_KEYS)
        terms = []
        for keyword, (column, match) in _ITEM_KEYS.items():
            if asked is not None and keyword in asked:
                term = condition(Key(keyword, Level.PATIENT, column, match), _texts(asked[keyword]), dialect)
                if term is not None:
                    terms.append(term)
        self._terms = terms

    def condition(self) -> ColumnElement[bool] | None:
        if not self._terms:
            return None
        query = select(OtherPatientId.id).where(OtherPatientId.patient_pk == Patient.id, *self._terms)
        return query.correlate(Patient).exists()

    def read(self, session: Session, owners: Sequence[int]) -> Mapping[int, object]:
        columns = {keyword: column for keyword, (column, _) in _ITEM_KEYS.items()}
        query = (
            select(OtherPatientId.patient_pk, *columns.values())
            .where(OtherPatientId.patient_pk.in_(owners), *self._terms)
            .order_by(OtherPatientId.id)
        )
        found: dict[int, list[Dataset]] = {}
        for patient, *values in session.execute(query):
            held = dict(zip(columns, values))
            item = Dataset()
            for keyword in self._returned:
                tag = tag_for_keyword(keyword)
                if tag is not None:  # a key the index does not hold comes back with zero length
                    vr = dictionary_VR(tag)
                    item.add_new(tag, vr, held.get(keyword, [] if vr == "SQ" else ""))
            found.setdefault(patient, []).append(item)
        return found


GATHERED: dict[str, type[SopClassesInStudy | OtherPatientIds]] = {
    "SOPClassesInStudy": SopClassesInStudy,
    "OtherPatientIDsSequence": OtherPatientIds,
}
