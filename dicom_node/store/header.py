"""Reading and checking what the index needs from a stored instance, without its pixel data.

Used on the receive path (to validate before acknowledging) and by reconciliation (to index a
file whose row was lost in a crash).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

__all__ = ["InstanceRecord", "HeaderError", "read_header", "record_from_dataset"]


class HeaderError(ValueError):
    """The stored bytes are not an acceptable instance; ``status`` is the DIMSE failure to send."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class InstanceRecord:
    """One instance's index attributes (patient → study → series → instance)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    path: str = ""
    size: int = 0
    calling_ae: str = ""
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    made_by_node: bool = False
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    manufacturer: str = ""
    instance_number: int | None = None


def _text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    value = ds.get(keyword, "")
    return ("" if value is None else str(value)).strip()[:limit]


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def record_from_dataset(ds: Dataset, transfer_syntax: str) -> InstanceRecord:
    """Index attributes of ``ds``; raises HeaderError(0xA900) when a required UID is missing."""
    missing = [k for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID") if not _text(ds, k)]
    if missing:
        raise HeaderError(f"dataset lacks {', '.join(missing)}", 0xA900)
    return InstanceRecord(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        transfer_syntax=transfer_syntax,
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName", 324),
        birth_date=_text(ds, "PatientBirthDate", 8),
        sex=_text(ds, "PatientSex", 16),
        study_date=_text(ds, "StudyDate", 8),
        study_time=_text(ds, "StudyTime", 16),
        accession_number=_text(ds, "AccessionNumber", 16),
        study_id=_text(ds, "StudyID", 16),
        study_description=_text(ds, "StudyDescription"),
        referring_physician=_text(ds, "ReferringPhysicianName", 324),
        modality=_text(ds, "Modality", 16),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        body_part=_text(ds, "BodyPartExamined", 16),
        manufacturer=_text(ds, "Manufacturer"),
        instance_number=_int(ds, "InstanceNumber"),
    )


def read_header(path: Path) -> InstanceRecord:
    """Parse every element header of the Part 10 file at ``path`` (values over 1 KiB are skipped,
    not read) and return its index record.

    Raises HeaderError(0xC000) for bytes that are not a complete DICOM dataset: garbage, or a
    truncated one (an element whose declared length runs past the end of the file).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        ds = _parse(fh, size)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    record = record_from_dataset(ds, ts)
    record.path, record.size = str(path), size
    return record


def _parse(fh: BinaryIO, size: int) -> Dataset:
    try:
        # Deferred values are skipped by seeking, so the parser ends past EOF when the sender
        # cut the dataset short; a complete one ends exactly at the file's size.
        ds = dcmread(fh, defer_size=1024)
        end = fh.tell()
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, OSError, NotImplementedError) as exc:
        raise HeaderError(f"cannot parse dataset: {type(exc).__name__}: {exc}", 0xC000) from exc
    if end > size:
        raise HeaderError(f"dataset truncated: elements declare {end} bytes, {size} received", 0xC000)
    return ds
