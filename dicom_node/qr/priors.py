"""The ``fetch_priors`` routing action: find the same patient's earlier studies on a PACS and
bring them into the node, so a pipeline can compare the new study with its priors."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Literal

from pydicom.dataset import Dataset
from sqlalchemy import func, select

from dicom_node.config import Settings
from dicom_node.errors import StudyError
from dicom_node.qr.scu import query, resolve_destination, retrieve
from dicom_node.qr.sink import IndexSink
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Patient, Series, Study

__all__ = ["fetch_priors", "select_priors"]

log = logging.getLogger(__name__)


def _current(index: Index, study_uid: str) -> tuple[str, str]:
    with index.sessions() as session:
        row = session.execute(
            select(Patient.patient_id, Study.study_date)
            .join(Study, Study.patient_pk == Patient.id)
            .where(Study.study_uid == study_uid)
        ).first()
    if row is None:
        raise StudyError(f"study {study_uid} is not in the index")
    return str(row[0]), str(row[1])


def _held(index: Index, study_uid: str) -> int:
    with index.sessions() as session:
        return int(
            session.scalar(
                select(func.count(Instance.id))
                .join(Series, Instance.series_pk == Series.id)
                .join(Study, Series.study_pk == Study.id)
                .where(Study.study_uid == study_uid)
            )
            or 0
        )


def select_priors(
    matches: list[Dataset], study_uid: str, patient_id: str, study_date: str, modality: str | None, max_count: int
) -> list[Dataset]:
    """The most recent ``max_count`` matches that are really priors: same patient, another
    study, not later than the current one, of ``modality`` when the PACS says (it may ignore
    the ModalitiesInStudy key, so it is checked again here)."""
    priors = []
    for ds in matches:
        uid, date = str(ds.get("StudyInstanceUID", "")), str(ds.get("StudyDate", ""))
        if not uid or uid == study_uid or str(ds.get("PatientID", patient_id)) != patient_id:
            continue
        if study_date and date and date > study_date:
            continue
        modalities = ds.get("ModalitiesInStudy")
        if modality and modalities:
            values = [modalities] if isinstance(modalities, str) else list(modalities)
            if modality not in values:
                continue
        priors.append(ds)
    priors.sort(key=lambda d: (str(d.get("StudyDate", "")), str(d.get("StudyTime", ""))), reverse=True)
    return priors[:max_count]


def fetch_priors(
    settings: Settings,
    index: Index,
    study_uid: str,
    source: str,
    modality: str | None,
    lookback_days: int,
    max_count: int,
    *,
    method: Literal["move", "get"] = "move",
    index_wait_s: float = 30.0,
) -> list[str]:
    """Query ``source`` (a destination name) for the patient's studies of the last
    ``lookback_days`` before ``study_uid``, retrieve up to ``max_count`` of them (most recent
    first) and return the prior Study Instance UIDs the node now holds.

    ``move`` asks the PACS to send to our AE title (it must know us; our SCP must be running
    and indexes what arrives); ``get`` brings them back on our own association.
    """
    patient_id, study_date = _current(index, study_uid)
    if not patient_id:
        log.info("no priors fetched: the study has no Patient ID", extra={"study_uid": study_uid})
        return []
    end = dt.datetime.strptime(study_date, "%Y%m%d").date() if len(study_date) == 8 else dt.date.today()
    start = end - dt.timedelta(days=lookback_days)
    dest = resolve_destination(settings, source)
    keys = {
        "PatientID": patient_id,
        "StudyDate": f"{start:%Y%m%d}-{end:%Y%m%d}",
        "StudyTime": "",
        "StudyInstanceUID": "",
        "ModalitiesInStudy": modality or "",
        "NumberOfStudyRelatedInstances": "",
    }
    matches = query(dest, "STUDY", keys, calling_ae=settings.ae_title)
    priors = select_priors(matches, study_uid, patient_id, f"{end:%Y%m%d}", modality, max_count)
    sink = IndexSink(FileStore(settings.store_dir), index) if method == "get" else None
    held = []
    for prior in priors:
        uid = str(prior.StudyInstanceUID)
        expected = int(prior.get("NumberOfStudyRelatedInstances") or 0)
        if expected and _held(index, uid) >= expected:
            held.append(uid)
            continue
        result = retrieve(
            dest, uid, method, sink, calling_ae=settings.ae_title, move_destination=settings.ae_title
        )
        if result.completed and (method == "get" or _wait_indexed(index, uid, result.completed, index_wait_s)):
            held.append(uid)
        if not result.ok:
            log.warning(
                "prior retrieved partly: status 0x%04X, %d failed", result.status, result.failed,
                extra={"study_uid": study_uid},
            )  # fmt: skip
    log.info("%d of %d priors held", len(held), len(priors), extra={"study_uid": study_uid})
    return held


def _wait_indexed(index: Index, study_uid: str, expected: int, timeout_s: float) -> bool:
    """After a C-MOVE the SCP has the files; its index rows follow in a batch moments later."""
    deadline = time.monotonic() + timeout_s
    while _held(index, study_uid) < expected:
        if time.monotonic() > deadline:
            log.warning("moved prior not fully indexed after %.0f s", timeout_s, extra={"study_uid": study_uid})
            return False
        time.sleep(0.1)
    return True
