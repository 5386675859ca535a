"""Identifiers in, SQL out: C-FIND responses and C-MOVE/C-GET instance lists from the index.

An identifier is checked against its information model first (PS3.4 C.4.1.2.2.1 hierarchical
search, C.4.2.2.1 retrieve keys); refusals are QRErrors the SCP turns into statuses. Rows are
read in keyset-paginated batches (``pk > last ORDER BY pk LIMIT n``), each in its own short
read, so a slow peer never holds a database transaction open and no result set is ever
loaded whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from dicom_node.qr.gathered import GATHERED, Gathered
from dicom_node.qr.keys import COMPUTED, KEYS, TABLE_PK
from dicom_node.qr.matching import condition, has_wildcard, modalities_condition
from dicom_node.qr.model import UNIQUE_KEY, InformationModel, Level, QRError, QRStatus
from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Patient, Series, Study

__all__ = ["FindPlan", "RetrievePlan", "InstanceRef", "plan_find", "plan_retrieve"]

# Keys the SCP answers itself rather than from the index.
_ANSWERED = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability"}
_QR_LEVEL_TAG = 0x00080052


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _level(model: InformationModel, identifier: Dataset) -> Level:
    if "QueryRetrieveLevel" not in identifier:
        raise QRError(QRStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, "QueryRetrieveLevel missing", [_QR_LEVEL_TAG])
    raw = str(identifier.QueryRetrieveLevel or "").strip().upper()
    try:
        level = Level(raw)
    except ValueError:
        raise QRError(
            QRStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, f"QueryRetrieveLevel {raw!r} invalid", [_QR_LEVEL_TAG]
        ) from None
    if level not in model.levels:
        raise QRError(
            QRStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"level {raw} not in the {model.name} root model",
            [_QR_LEVEL_TAG],
        )
    return level


def _require_single(identifier: Dataset, keyword: str, level: Level) -> str:
    values = [v.strip() for v in _values(identifier[keyword])] if keyword in identifier else []
    values = [v for v in values if v]
    if len(values) != 1 or has_wildcard(values[0]):
        raise QRError(
            QRStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"{level} level needs a single {keyword}",
            [int(tag_for_keyword(keyword) or 0)],
        )
    return values[0]


def _hierarchy(level: Level) -> Select[tuple[int]]:
    """The level's table joined to every table above it."""
    query = select(TABLE_PK[level])
    if level is Level.PATIENT:
        return query.select_from(Patient)
    if level is Level.STUDY:
        query = query.select_from(Study)
    elif level is Level.SERIES:
        query = query.select_from(Series).join(Study, Series.study_pk == Study.id)
    else:
        query = (
            query.select_from(Instance)
            .join(Series, Instance.series_pk == Series.id)
            .join(Study, Series.study_pk == Study.id)
        )
    return query.join(Patient, Study.patient_pk == Patient.id)


@dataclass
class FindPlan:
    """A checked C-FIND: the level, its SQL conditions and the keys to return, in order."""

    model: InformationModel
    level: Level
    where: list[ColumnElement[bool]] = field(default_factory=list)
    # (tag, VR, keyword, label of the selected column or None for a zero-length answer)
    returns: list[tuple[int, str, str, str | None]] = field(default_factory=list)
    columns: dict[str, ColumnElement[object]] = field(default_factory=dict)
    requested: set[str] = field(default_factory=set)
    gathered: dict[str, Gathered] = field(default_factory=dict)  # keyword → key read per batch

    def rows(self, index: Index, batch: int = 256) -> Iterator[dict[str, object]]:
        """Matching rows as ``{label: value}``, batch by batch."""
        pk = TABLE_PK[self.level]
        base = _hierarchy(self.level).add_columns(*(c.label(name) for name, c in self.columns.items()))
        for term in self.where:
            base = base.where(term)
        last = 0
        while True:
            with index.sessions() as session:
                chunk = session.execute(base.where(pk > last).order_by(pk).limit(batch)).all()
                rows = [dict(row._mapping) for row in chunk]
                for keyword, key in self.gathered.items():
                    owner = _owner_label(key)
                    values = key.read(session, sorted({int(row[owner]) for row in rows}))
                    for row in rows:
                        row[keyword] = values.get(row[owner], [])
            yield from rows
            if len(chunk) < batch:
                return
            last = chunk[-1][0]

    def responses(self, index: Index, retrieve_ae: str, batch: int = 256) -> Iterator[Dataset]:
        """One response identifier per match (PS3.4 C.4.1.1.3.2)."""
        for row in self.rows(index, batch):
            yield self._response(row, retrieve_ae)

    def _response(self, row: dict[str, object], retrieve_ae: str) -> Dataset:
        ds = Dataset()
        non_ascii = False
        for tag, vr, keyword, label in self.returns:
            value: object = None if label is None else row.get(label)
            if keyword == "ModalitiesInStudy" and isinstance(value, str):
                value = sorted({m for m in value.split("\\") if m})
            elif vr == "SQ":
                value = value or []  # a sequence the index holds (gathered), else zero length
                non_ascii |= any(not str(e.value).isascii() for item in value for e in item)  # type: ignore[attr-defined]
            elif value is None:
                value = None if vr in ("IS", "DS", "US", "UL", "SS", "SL") else ""
            elif isinstance(value, str) and not value.isascii():
                non_ascii = True
            ds.add_new(tag, vr, value)
        ds.QueryRetrieveLevel = self.level.value
        if "InstanceAvailability" in self.requested:
            ds.InstanceAvailability = "ONLINE"
        ds.RetrieveAETitle = retrieve_ae
        if non_ascii:
            ds.SpecificCharacterSet = "ISO_IR 192"
        return ds


def plan_find(model: InformationModel, identifier: Dataset, dialect: str) -> FindPlan:
    """Check a C-FIND identifier against ``model`` and translate it (QRError when it does not fit)."""
    level = _level(model, identifier)
    for keyword in model.unique_keys_above(level):
        _require_single(identifier, keyword, level)
    plan = FindPlan(model, level)
    for elem in identifier:
        keyword = elem.keyword
        plan.requested.add(keyword)
        if not keyword or elem.tag.group in (0x0000, 0x0002) or keyword in _ANSWERED:
            continue  # private and unknown keys are not answered at all
        label = _plan_key(plan, keyword, elem, dialect)
        plan.returns.append((int(elem.tag), elem.VR, keyword, label))
    # The unique keys of this level and those above always come back (C.4.1.2.2.1).
    for lv in model.levels[: model.levels.index(level) + 1]:
        keyword = UNIQUE_KEY[lv]
        if keyword not in plan.requested:
            plan.columns[keyword] = KEYS[keyword].column
            tag = int(tag_for_keyword(keyword) or 0)
            plan.returns.append((tag, dictionary_VR(tag), keyword, keyword))
    plan.returns.sort(key=lambda r: r[0])
    return plan


def _owner_label(key: Gathered) -> str:
    return f"{key.level.value.lower()}_pk"


def _plan_key(plan: FindPlan, keyword: str, elem: DataElement, dialect: str) -> str | None:
    """Add ``keyword``'s condition and column to ``plan``; its column label, or None when the
    key is not one we hold at this level (returned with zero length, C.2.2.1.3)."""
    if keyword in GATHERED:
        gathered = GATHERED[keyword](elem, dialect)
        if gathered.level.depth > plan.level.depth:
            return None
        plan.columns[_owner_label(gathered)] = gathered.owner
        plan.gathered[keyword] = gathered
        term = gathered.condition()
        if term is not None:
            plan.where.append(term)
        return keyword
    key, computed = KEYS.get(keyword), COMPUTED.get(keyword)
    if elem.VR == "SQ" or (key is None and computed is None):
        return None
    level = key.level if key is not None else computed.level  # type: ignore[union-attr]
    if level.depth > plan.level.depth:
        return None
    if key is not None:
        term = condition(key, _values(elem), dialect)
        plan.columns[keyword] = key.column
    else:
        assert computed is not None
        term = modalities_condition(_values(elem), dialect) if keyword == "ModalitiesInStudy" else None
        plan.columns[keyword] = computed.expression()
    if term is not None:
        plan.where.append(term)
    return keyword


@dataclass(frozen=True)
class InstanceRef:
    """What a C-STORE sub-operation needs of one instance."""

    pk: int
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: str


@dataclass
class RetrievePlan:
    """The instances a C-MOVE/C-GET identifier names (PS3.4 C.4.2.2.1)."""

    level: Level
    where: list[ColumnElement[bool]]

    def _query(self, *columns: InstrumentedAttribute[object]) -> Select[tuple[object, ...]]:
        query = (
            select(*columns)
            .select_from(Instance)
            .join(Series, Instance.series_pk == Series.id)
            .join(Study, Series.study_pk == Study.id)
            .join(Patient, Study.patient_pk == Patient.id)
        )
        for term in self.where:
            query = query.where(term)
        return query

    def stored_syntaxes(self, index: Index) -> list[tuple[str, str]]:
        """Distinct (SOP class, transfer syntax) pairs of the instances, to propose contexts."""
        query = self._query(Instance.sop_class_uid, Instance.transfer_syntax).distinct()
        with index.sessions() as session:
            return [(str(c), str(t)) for c, t in session.execute(query)]

    def count(self, index: Index) -> int:
        with index.sessions() as session:
            return int(session.scalar(self._query().with_only_columns(func.count(Instance.id))) or 0)

    def instances(self, index: Index, batch: int = 256) -> Iterator[InstanceRef]:
        query = self._query(
            Instance.id, Instance.sop_instance_uid, Instance.sop_class_uid, Instance.transfer_syntax, Instance.path
        )
        last = 0
        while True:
            with index.sessions() as session:
                chunk = session.execute(query.where(Instance.id > last).order_by(Instance.id).limit(batch)).all()
            for row in chunk:
                yield InstanceRef(*row)
            if len(chunk) < batch:
                return
            last = chunk[-1][0]


def plan_retrieve(model: InformationModel, identifier: Dataset) -> RetrievePlan:
    """Check a C-MOVE/C-GET identifier: single-valued unique keys above the level, the level's
    unique key (one value or a list) at it; other keys are ignored."""
    level = _level(model, identifier)
    where: list[ColumnElement[bool]] = []
    for keyword in model.unique_keys_above(level):
        where.append(KEYS[keyword].column == _require_single(identifier, keyword, level))
    keyword = UNIQUE_KEY[level]
    values = [v.strip() for v in _values(identifier[keyword])] if keyword in identifier else []
    values = [v for v in values if v]
    if not values or any(has_wildcard(v) for v in values):
        raise QRError(
            QRStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, f"{level} retrieve needs {keyword} (no wildcards)"
        )
    column = KEYS[keyword].column
    where.append(column == values[0] if len(values) == 1 else column.in_(values))  # type: ignore[arg-type]
    return RetrievePlan(level, where)
