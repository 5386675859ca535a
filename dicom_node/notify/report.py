"""What a notification says, read back from what the node stored: the result's SR (TID 1500)
for a finished pipeline job, the index for a failed one.

Nothing is re-computed: every finding and measurement comes from the stored SR, read
generically (every Measurement Group, every NUM and CODE item in it), so a report with one
group per lesion, a classification with a probability or a future pipeline's new measurement
all reach HL7, FHIR and webhooks without a change here. PS3.16 TID 1500/1501/1411/1410 and
TID 4019 (algorithm identification) define the items read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from dicom_node.errors import PermanentError
from dicom_node.store.index import Index
from dicom_node.store.models import Patient, Study

__all__ = [
    "Algorithm",
    "Concept",
    "Evaluation",
    "FindingGroup",
    "Measure",
    "ResultObject",
    "ResultReport",
    "StudyFacts",
    "read_report",
    "study_facts",
]

# PS3.16 codes (scheme DCM unless noted) read from the SR.
_GROUP = ("125007", "DCM")  # Measurement Group
_TRACKING_ID = ("112039", "DCM")
_TRACKING_UID = ("112040", "DCM")
_FINDING = ("121071", "DCM")
_FINDING_CATEGORY = ("276214006", "SCT")
_FINDING_SITE = ("363698007", "SCT")
_ALGORITHM_NAME = ("111001", "DCM")
_ALGORITHM_VERSION = ("111003", "DCM")
_ALGORITHM_PARAMETERS = ("111002", "DCM")
_DEVICE_OBSERVER_UID = ("121012", "DCM")
_PROCEDURE_REPORTED = ("121058", "DCM")
_DERIVATION = ("121401", "DCM")
_PRIORITY = ("260870009", "SCT")
_URGENT = ("RID49480", "RADLEX")  # ACR Category 1 Actionable Finding, as encoders.coding writes it
_ABSENT = ("272519000", "SCT")


@dataclass(frozen=True)
class Concept:
    """A coded concept as the SR carries it (code value, scheme designator, meaning)."""

    code: str
    scheme: str
    meaning: str

    @classmethod
    def of(cls, item: Dataset) -> Concept:
        return cls(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))

    @property
    def key(self) -> tuple[str, str]:
        return self.code, self.scheme


@dataclass(frozen=True)
class Measure:
    """One NUM item: a value in a UCUM unit, or None with the reason (Numeric Value Qualifier)."""

    name: Concept
    value: float | None
    unit: Concept | None
    derivation: Concept | None = None
    not_assessable: Concept | None = None

    @property
    def label(self) -> str:
        return f"{self.derivation.meaning} {self.name.meaning}" if self.derivation else self.name.meaning


@dataclass(frozen=True)
class Evaluation:
    """One qualitative CODE item of a group: concept name → coded value (e.g. Lesion → Present)."""

    name: Concept
    value: Concept


@dataclass
class FindingGroup:
    """One TID 1500 Measurement Group: one lesion, one organ or one classification."""

    tracking_id: str
    tracking_uid: str | None
    finding: Concept | None
    category: Concept | None = None
    site: Concept | None = None
    measures: list[Measure] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def present(self) -> bool:
        """False when the group says its finding is Absent (TID 1501 "no finding")."""
        return not any(e.value.key == _ABSENT for e in self.evaluations if e.name.key != _PRIORITY)

    def text(self) -> str:
        """A one-line reading of the group, for HL7 TX and webhook bodies."""
        parts = [f"{e.name.meaning}: {e.value.meaning}" for e in self.evaluations]
        for m in self.measures:
            if m.value is None:
                reason = m.not_assessable.meaning if m.not_assessable else "no value"
                parts.append(f"{m.label}: not assessable ({reason})")
            else:
                parts.append(f"{m.label}: {m.value:.4g} {m.unit.code if m.unit else ''}".rstrip())
        where = f" ({self.site.meaning})" if self.site else ""
        return f"{self.tracking_id}{where}: " + "; ".join(parts)


@dataclass(frozen=True)
class Algorithm:
    """The algorithm that made the result (IHE AIR): name, version, model, checksum, Device UID."""

    name: str
    version: str
    model_name: str = ""
    model_checksum: str = ""
    device_uid: str = ""


@dataclass(frozen=True)
class StudyFacts:
    """Patient and study attributes a receiving system files the result under."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""  # DICOM PN, family^given^middle^prefix^suffix
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    accession_issuer: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    modality: str = ""


@dataclass(frozen=True)
class ResultObject:
    """A DICOM object the pipeline stored (SEG, SR, …)."""

    sop_instance_uid: str
    sop_class_uid: str


@dataclass
class ResultReport:
    """Everything one notification needs; built from stored data only."""

    study: StudyFacts
    pipeline: str
    algorithm: Algorithm
    procedure: Concept | None
    groups: list[FindingGroup]
    objects: list[ResultObject]
    urgent: bool
    failure: str | None = None  # set for a failed pipeline: the reason, no findings

    @property
    def has_findings(self) -> bool:
        return any(g.present for g in self.groups)

    def summary(self) -> str:
        if self.failure is not None:
            return f"{self.pipeline} failed: {self.failure}"
        found = [g.tracking_id for g in self.groups if g.present]
        head = f"{'URGENT ' if self.urgent else ''}{self.pipeline}: "
        return head + (f"{len(found)} finding(s): {', '.join(found)}" if found else "no finding")


def _name(item: Dataset) -> tuple[str, str] | None:
    names = item.get("ConceptNameCodeSequence")
    return (str(names[0].CodeValue), str(names[0].CodingSchemeDesignator)) if names else None


def _walk(items: Sequence[Dataset]) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _measure(item: Dataset) -> Measure:
    name = Concept.of(item.ConceptNameCodeSequence[0])
    derivation = next(
        (Concept.of(m.ConceptCodeSequence[0]) for m in item.get("ContentSequence", []) if _name(m) == _DERIVATION), None
    )
    values = item.get("MeasuredValueSequence") or []
    if not values:
        qualifier = item.get("NumericValueQualifierCodeSequence")
        return Measure(name, None, None, derivation, Concept.of(qualifier[0]) if qualifier else None)
    unit = values[0].MeasurementUnitsCodeSequence[0]
    return Measure(name, float(values[0].NumericValue), Concept.of(unit), derivation)


def _group(container: Dataset) -> tuple[FindingGroup, dict[tuple[str, str], list[str]]]:
    group = FindingGroup(tracking_id="", tracking_uid=None, finding=None)
    texts: dict[tuple[str, str], list[str]] = {}
    for item in container.get("ContentSequence", []):
        key, kind = _name(item), item.ValueType
        if key is None:
            continue
        if kind == "TEXT":
            texts.setdefault(key, []).append(str(item.TextValue))
        elif kind == "UIDREF" and key == _TRACKING_UID:
            group.tracking_uid = str(item.UID)
        elif kind == "NUM":
            group.measures.append(_measure(item))
        elif kind == "CODE":
            value = Concept.of(item.ConceptCodeSequence[0])
            if key == _FINDING:
                group.finding = value
            elif key == _FINDING_CATEGORY:
                group.category = value
            elif key == _FINDING_SITE:
                group.site = value
            elif item.RelationshipType == "CONTAINS":
                group.evaluations.append(Evaluation(Concept.of(item.ConceptNameCodeSequence[0]), value))
    group.tracking_id = (texts.get(_TRACKING_ID) or [group.finding.meaning if group.finding else "Finding"])[0]
    return group, texts


def _facts(ds: Dataset) -> StudyFacts:
    issuer = ds.get("IssuerOfAccessionNumberSequence")
    return StudyFacts(
        study_uid=str(ds.StudyInstanceUID), patient_id=str(ds.get("PatientID", "")),
        patient_name=str(ds.get("PatientName", "")), birth_date=str(ds.get("PatientBirthDate", "")),
        sex=str(ds.get("PatientSex", "")), accession_number=str(ds.get("AccessionNumber", "")),
        accession_issuer=str(issuer[0].get("LocalNamespaceEntityID", "")) if issuer else "",
        study_date=str(ds.get("StudyDate", "")), study_time=str(ds.get("StudyTime", "")),
        study_description=str(ds.get("StudyDescription", "")), modality=_source_modality(ds),
    )  # fmt: skip


def _source_modality(sr: Dataset) -> str:
    """The analysed images' modality, as the SR's Image Library records it (CID 29)."""
    for item in _walk(sr.get("ContentSequence", [])):
        if _name(item) == ("121139", "DCM") and item.ValueType == "CODE":
            return str(item.ConceptCodeSequence[0].CodeValue)
    return ""


def read_report(sr_path: Path, objects: Sequence[ResultObject], pipeline: str) -> ResultReport:
    """The notification content of one stored TID 1500 SR; PermanentError when it is unreadable
    (a result file gone or damaged will not come back by retrying)."""
    try:
        sr = dcmread(sr_path)
    except (OSError, InvalidDicomError) as exc:
        raise PermanentError(f"cannot read the stored result SR {sr_path}: {exc}") from exc
    root = sr.get("ContentSequence", [])
    groups: list[FindingGroup] = []
    algorithm_texts: dict[tuple[str, str], list[str]] = {}
    for item in _walk(root):
        if item.ValueType == "CONTAINER" and _name(item) == _GROUP:
            group, texts = _group(item)
            groups.append(group)
            algorithm_texts = algorithm_texts or texts
    procedure = next((Concept.of(i.ConceptCodeSequence[0]) for i in root if _name(i) == _PROCEDURE_REPORTED), None)
    device_uid = next((str(i.UID) for i in root if _name(i) == _DEVICE_OBSERVER_UID), "")
    parameters = dict(p.partition("=")[::2] for p in algorithm_texts.get(_ALGORITHM_PARAMETERS, []))
    algorithm = Algorithm(
        name=(algorithm_texts.get(_ALGORITHM_NAME) or [str(sr.get("ManufacturerModelName", pipeline))])[0],
        version=(algorithm_texts.get(_ALGORITHM_VERSION) or [str(sr.get("SoftwareVersions", ""))])[0],
        model_name=parameters.get("model", ""), model_checksum=parameters.get("model_checksum", ""),
        device_uid=device_uid,
    )  # fmt: skip
    urgent = any(e.name.key == _PRIORITY and e.value.key == _URGENT for g in groups for e in g.evaluations)
    return ResultReport(_facts(sr), pipeline, algorithm, procedure, groups, list(objects), urgent)


def study_facts(index: Index, study_uid: str) -> StudyFacts:
    """Patient and study attributes from the index, for a failure notice (there is no SR)."""
    with index.sessions() as session:
        study = session.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None:
            return StudyFacts(study_uid=study_uid)
        patient = session.get(Patient, study.patient_pk)
        return StudyFacts(
            study_uid=study_uid, patient_id=patient.patient_id if patient else "",
            patient_name=patient.patient_name if patient else "", birth_date=patient.birth_date if patient else "",
            sex=patient.sex if patient else "", accession_number=study.accession_number,
            study_date=study.study_date, study_time=study.study_time, study_description=study.description,
            modality=study.modalities.split("\\")[0] if study.modalities else "",
        )  # fmt: skip
