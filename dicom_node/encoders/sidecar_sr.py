"""Non-imaging results (genomics, drug screening, risk prediction) as a Comprehensive SR.

A sidecar job has no images, so highdicom's SR classes (which require image evidence) do not
apply; the document is assembled here from highdicom content items and follows the
Comprehensive SR IOD (PS3.3 A.35.3) without a root template:

    CONTAINER  result.report_title                               (SEPARATE)
      HAS CONCEPT MOD  Language of Content Item and Descendants  (TID 1204, en-US)
      HAS OBS CONTEXT  device observer = the pipeline             (TID 1002/1004)
      HAS CONCEPT MOD  algorithm name, version, family…           (TID 4019 items)
      CONTAINS TEXT    Summary (DCM 121111)                       result.summary
      CONTAINS TEXT/NUM  one per report item (NUM without a unit: UCUM "1");
                         an item with both a number and a text gives a NUM and a TEXT

Patient: a dataset or a mapping keyed by DICOM keywords (``PatientID``, ``PatientName``,
``PatientBirthDate``, ``PatientSex``; ``BirthDate``/``Sex`` are accepted too). A Patient ID is
required: an SR the PACS cannot file under a patient is useless.

Study: with ``study_uid`` the SR joins that study (an order's study, or the patient's imaging
study); study attributes are copied when ``patient`` is a dataset of that study, and otherwise
left empty (Type 2) for the PACS to keep its own. Without one, the job gets a study of its own,
because a non-imaging result has no imaging study to belong to; its UID is derived from the
patient, pipeline, version and ``job_key``.

UIDs are deterministic: ``job_key`` (e.g. a digest of the input file) identifies the job; without
it a digest of the report content is used. The same job re-sent replaces its earlier SR.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from highdicom.sr import (
    ContainerContentItem,
    LanguageOfContentItemAndDescendants,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
)
from highdicom.sr.templates import DEFAULT_LANGUAGE
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ComprehensiveSRStorage, ExplicitVRLittleEndian

from pipelines.base import ReportItem, SidecarResult

from .algorithm import MANUFACTURER, AlgorithmInfo, add_contributing_equipment
from .coding import NO_UNITS, coded
from .uids import derive_uid

__all__ = ["encode_sidecar_report", "sidecar_algorithm"]

_PATIENT_KEYS = {
    "PatientID": ("PatientID",),
    "PatientName": ("PatientName",),
    "PatientBirthDate": ("PatientBirthDate", "BirthDate"),
    "PatientSex": ("PatientSex", "Sex"),
}
_STUDY_KEYS = ("StudyDate", "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName",
               "StudyDescription")
_CONTAINS = RelationshipTypeValues.CONTAINS
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "PN", "UC"}


def sidecar_algorithm(result: SidecarResult) -> AlgorithmInfo:
    """The algorithm identity of a sidecar pipeline.

    Sidecars report no model of their own: the pipeline name stands for the model and its
    version for the checksum, so the Device UID changes with the pipeline version.
    """
    return AlgorithmInfo(result.pipeline, result.version, result.pipeline, f"version:{result.version}")


def encode_sidecar_report(
    result: SidecarResult,
    patient: Dataset | Mapping[str, Any],
    study_uid: str | None,
    series_number: int = 910,
    job_key: str | None = None,
    algorithm: AlgorithmInfo | None = None,
) -> Dataset:
    """A Comprehensive SR of ``result`` for ``patient`` (see module notes); ready to save or send."""
    algorithm = algorithm or sidecar_algorithm(result)
    patient_attrs = _patient(patient)
    key = job_key or _content_digest(result)
    identity = (patient_attrs["PatientID"], result.pipeline, result.version, key)
    study = study_uid or derive_uid("sidecar-study", *identity)
    now = dt.datetime.now()

    ds = Dataset()
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = derive_uid("sidecar-sr", study, *identity)
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    for keyword, value in patient_attrs.items():
        setattr(ds, keyword, value)
    _set_study(ds, study, study_uid is None, patient, result)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = derive_uid("sidecar-series", study, *identity)
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"AI report {result.pipeline}"[:64]
    ds.SeriesDate, ds.SeriesTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = algorithm.name
    ds.SoftwareVersions = algorithm.version
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.CompletionFlag = "COMPLETE"
    ds.PreliminaryFlag = "PRELIMINARY"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = []
    for element in _content(result, algorithm):
        ds.add(element)
    add_contributing_equipment(ds, algorithm)
    ds.SpecificCharacterSet = _character_set(ds)

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def _set_study(ds: Dataset, study: str, new: bool, patient: Dataset | Mapping[str, Any],
               result: SidecarResult) -> None:
    """General Study attributes: our own for a new study, copied from a dataset of the given
    study when there is one, else empty (Type 2) so the PACS keeps what it has."""
    ds.StudyInstanceUID = study
    for keyword in _STUDY_KEYS:
        setattr(ds, keyword, "")
    if new:
        ds.StudyDate, ds.StudyTime = ds.InstanceCreationDate, ds.InstanceCreationTime
        ds.StudyDescription = result.report_title.meaning[:64]
        ds.StudyID = result.pipeline[:16]
    elif isinstance(patient, Dataset) and patient.get("StudyInstanceUID") == study:
        for keyword in _STUDY_KEYS:
            if keyword in patient:
                setattr(ds, keyword, patient[keyword].value)


def _character_set(ds: Dataset) -> str:
    """Latin-1 (ISO_IR 100) when every text fits, the widest-supported choice; else UTF-8."""
    fits = True

    def check(dataset: Dataset, element: Any) -> None:
        nonlocal fits
        if element.VR in _TEXT_VRS and element.value is not None:
            try:
                str(element.value).encode("latin-1")
            except UnicodeEncodeError:
                fits = False

    ds.walk(check)
    return "ISO_IR 100" if fits else "ISO_IR 192"


def _patient(patient: Dataset | Mapping[str, Any]) -> dict[str, Any]:
    attrs = {}
    for keyword, aliases in _PATIENT_KEYS.items():
        values = [patient.get(alias) for alias in aliases]
        attrs[keyword] = next((v for v in values if v not in (None, "")), "")
    if not str(attrs["PatientID"]).strip():
        raise ValueError("The patient needs a Patient ID for the report to be filed under.")
    return attrs


def _content_digest(result: SidecarResult) -> str:
    """A digest of what the SR says, used as the job key when none is given."""
    payload = {
        "title": [result.report_title.value, result.report_title.scheme],
        "summary": result.summary,
        "items": [[i.name.value, i.name.scheme, i.text, i.value, i.unit and i.unit.value] for i in result.report_items],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _content(result: SidecarResult, algorithm: AlgorithmInfo) -> ContainerContentItem:
    root = ContainerContentItem(name=coded(result.report_title), is_content_continuous=False)
    content: list[Dataset] = [*LanguageOfContentItemAndDescendants(DEFAULT_LANGUAGE)]
    content.extend(algorithm.observer_context())
    content.extend(algorithm.sr_identification())
    if result.summary:
        content.append(TextContentItem(name=codes.DCM.Summary, value=result.summary, relationship_type=_CONTAINS))
    for item in result.report_items:
        content.extend(_items(item))
    root.ContentSequence = content
    return root


def _items(item: ReportItem) -> list[Dataset]:
    name = coded(item.name)
    if item.value is None and item.text is None:
        raise ValueError(f"Report item {item.name.meaning!r} has neither a value nor a text.")
    items: list[Dataset] = []
    if item.value is not None:
        if not math.isfinite(item.value):
            raise ValueError(f"Report item {item.name.meaning!r} has a non-finite value {item.value}.")
        unit = coded(item.unit) if item.unit else NO_UNITS
        items.append(NumContentItem(name=name, value=item.value, unit=unit, relationship_type=_CONTAINS))
    if item.text is not None:
        items.append(TextContentItem(name=name, value=item.text, relationship_type=_CONTAINS))
    return items
